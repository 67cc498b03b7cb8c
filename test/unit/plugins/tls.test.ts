import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { describe, it } from 'node:test'
import { makeSelfSignedSync } from '../../../core/tls/certificate'
import { ownCertificate } from '../../../core/tls/store'
import type { HarakaPlugin } from '../../../plugins/haraka'
import { ensureHarakaCertificate } from '../../../plugins/tls'
import { runtimeWith } from './fakes'

function pluginWith(tlsIni: object, reloads: string[]): HarakaPlugin {
  const log = () => {}
  return {
    name: 'linksec',
    config: { get: (name: string) => (name === 'tls.ini' ? tlsIni : {}) },
    register_hook: () => {},
    haraka_require: () => ({ tls_valid: false, load_tls_ini: () => reloads.push('load_tls_ini') }),
    logdebug: log,
    loginfo: log,
    logwarn: log,
    logerror: log,
    logcrit: log,
  }
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-haraka-tls-'))

describe('the Haraka plugin’s own certificate', () => {
  it('none configured: makes one where tls.ini looks, with dhparams, and reloads Haraka’s TLS', () => {
    const dir = tmp()
    fs.writeFileSync(path.join(dir, 'me'), 'mx.haraka.test\n')
    const reloads: string[] = []
    ensureHarakaCertificate(
      pluginWith({ main: { cert: 'c.pem', key: 'k.pem' } }, reloads),
      runtimeWith({}),
      dir,
    )
    const own = ownCertificate({ cert: path.join(dir, 'c.pem'), key: path.join(dir, 'k.pem') })
    assert.equal(own?.subjectAltName, 'DNS:mx.haraka.test')
    assert.ok(fs.existsSync(path.join(dir, 'dhparams.pem')))
    assert.deepEqual(reloads, ['load_tls_ini'])
    fs.rmSync(dir, { recursive: true })
  })

  it('an operator’s certificate is left byte for byte; self_signed=false makes none', () => {
    const dir = tmp()
    const op = makeSelfSignedSync('real.example.net')
    fs.writeFileSync(path.join(dir, 'tls_cert.pem'), op.certPem)
    fs.writeFileSync(path.join(dir, 'tls_key.pem'), op.keyPem)
    const reloads: string[] = []
    ensureHarakaCertificate(pluginWith({}, reloads), runtimeWith({}), dir)
    assert.equal(fs.readFileSync(path.join(dir, 'tls_cert.pem'), 'utf8'), op.certPem)
    const empty = tmp()
    ensureHarakaCertificate(pluginWith({}, reloads), runtimeWith({ tls: { self_signed: false } }), empty)
    assert.deepEqual(fs.readdirSync(empty), [])
    assert.deepEqual(reloads, [])
    for (const d of [dir, empty]) fs.rmSync(d, { recursive: true })
  })
})
