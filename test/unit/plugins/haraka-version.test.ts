import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, it } from 'node:test'
import * as semver from 'semver'
import { RuntimeHolder } from '../../../plugins/config'
import { outboundSupport, runningHarakaVersion, testedHarakaRange } from '../../../plugins/haraka-version'
import { DUTIES, dutiesFor } from '../../../plugins/linksec'
import { fakePlugin } from './fakes'

const REPO = path.resolve(__dirname, '..', '..', '..', '..')

function installedHaraka(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', 'Haraka', 'package.json'), 'utf8'))
  return String(pkg.version)
}

describe('the Haraka version contract of the outbound duty', () => {
  it('is package.json peerDependencies.Haraka, and the Haraka the tests run on is inside it', () => {
    const range = testedHarakaRange()
    assert.equal(range, '~3.3.4')
    assert.ok(semver.satisfies(installedHaraka(), range), `${installedHaraka()} in ${range}`)
  })

  it('allows the tested versions, also as a git checkout reports them', () => {
    assert.deepEqual(outboundSupport('3.3.4'), { ok: true })
    assert.deepEqual(outboundSupport('3.3.9/0123abc'), { ok: true })
  })

  it('refuses other versions, naming the running one and the tested range', () => {
    for (const v of ['3.4.0', '3.3.3', '2.8.28', '4.0.0-beta.1']) {
      const r = outboundSupport(v)
      assert.equal(r.ok, false, v)
      if (!r.ok) {
        assert.match(r.reason, new RegExp(`Haraka ${v.replace(/\./g, '\\.')}\\b`))
        assert.match(r.reason, /tested with Haraka ~3\.3\.4 only/)
      }
    }
    const unknown = outboundSupport(undefined)
    assert.equal(unknown.ok, false)
    if (!unknown.ok) assert.match(unknown.reason, /cannot read/)
  })

  it('reads the version haraka.js exports from the module cache', () => {
    const mod = (file: string, exports: unknown) => ({ [file]: { exports } as NodeJS.Module })
    assert.equal(runningHarakaVersion(mod('/opt/Haraka/haraka.js', { version: '3.3.4' })), '3.3.4')
    assert.equal(runningHarakaVersion(mod('/opt/app/haraka.json.js', { version: '9' })), undefined)
    assert.equal(runningHarakaVersion(mod('/opt/Haraka/haraka.js', {})), undefined)
    assert.equal(runningHarakaVersion({}), undefined)
  })

  it('drops only the outbound duty on an untested Haraka and says so at ERROR', () => {
    const plugin = fakePlugin({ main: { authserv_id: 'mx.test' } })
    const holder = new RuntimeHolder(plugin, '/x')
    const names = (d: readonly { name: string }[]) => d.map((x) => x.name)
    assert.deepEqual(
      names(dutiesFor(holder, DUTIES, '3.4.0')),
      names(DUTIES).filter((n) => n !== 'outbound'),
    )
    const errors = plugin.lines.filter((l) => l.startsWith('logerror'))
    assert.equal(errors.length, 1)
    assert.match(errors[0]!, /Haraka 3\.4\.0.*~3\.3\.4|~3\.3\.4.*Haraka 3\.4\.0/)
    assert.match(errors[0]!, /haraka_version=3\.4\.0/)
    plugin.lines.length = 0
    assert.deepEqual(names(dutiesFor(holder, DUTIES, '3.3.4')), names(DUTIES))
    assert.deepEqual(
      plugin.lines.filter((l) => l.startsWith('logerror')),
      [],
    )
  })
})
