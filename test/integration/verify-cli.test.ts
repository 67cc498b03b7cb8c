/**
 * `linksec verify <file.eml>`: the Authentication-Results field and the
 * verdict for one message with the same config as the adapters; exit 0 when
 * the message would pass through, 1 when it would be refused, 2 on usage.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'

const ROOT = path.resolve(__dirname, '..', '..', '..')
const BIN = path.join(ROOT, 'dist', 'bin', 'linksec.js')
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'verify')

function verify(...args: string[]) {
  const env = { ...process.env, LINKSEC_FORBID_SYSTEM_RESOLVER: '1' }
  return spawnSync(process.execPath, [BIN, 'verify', ...args], { encoding: 'utf8', timeout: 30_000, env })
}

describe('linksec verify', () => {
  let dir: string
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-verify-cli-'))
    fs.writeFileSync(
      path.join(dir, 'linksec.ini'),
      `[main]\nauthserv_id=mx.cli.test\n[keys]\ndir=${FIXTURES}\nmethods=local\n[log]\nlevel=error\n`,
    )
  })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('prints x-openpgp=pass and exits 0 for the PGP/MIME and inline fixtures', () => {
    for (const f of ['pgp-mime.eml', 'inline.eml']) {
      const r = verify(path.join(FIXTURES, f), '--config', dir)
      assert.equal(r.status, 0, r.stderr)
      assert.match(
        r.stdout,
        /^Authentication-Results: mx\.cli\.test; x-openpgp=pass header\.from=alice@example\.org body\.openpgp-fingerprint=[0-9A-F]{40} \(key from local\)\nverdict: continue\n$/,
      )
    }
  })

  it('an altered message: 550 5.7.1 and exit 1; --format json; stdin', () => {
    const altered = fs.readFileSync(path.join(FIXTURES, 'inline.eml'), 'latin1').replace('Hello', 'Hullo')
    const file = path.join(dir, 'altered.eml')
    fs.writeFileSync(file, altered, 'latin1')
    const r = verify(file, '--config', dir, '--format', 'json')
    assert.equal(r.status, 1)
    const out = JSON.parse(r.stdout) as { result: string; reply: string }
    assert.equal(out.result, 'fail')
    assert.match(
      out.reply,
      /^550 5\.7\.1 the OpenPGP signature of this message from alice@example\.org is not valid/,
    )
    const stdin = spawnSync(process.execPath, [BIN, 'verify', '-', '--config', dir], {
      input: altered,
      encoding: 'utf8',
    })
    assert.equal(stdin.status, 1)
  })

  it('usage errors exit 2', () => {
    assert.equal(verify('--config', dir).status, 2)
    assert.equal(verify(path.join(dir, 'missing.eml'), '--config', dir).status, 2)
  })
})
