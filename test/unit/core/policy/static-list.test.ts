import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { ConfigError } from '../../../../core/errors'
import { loadStaticList, parseStaticList, staticAnswer } from '../../../../core/policy/static-list'

const DOC = {
  'policy-aliases': { big: { mode: 'enforce', mxs: ['.mx.big.example'] } },
  policies: {
    'Example.NET': { mode: 'enforce', mxs: ['.example.net'], level: 4 },
    'plain.example': { mode: 'testing', mxs: ['mx.plain.example'], level: 2 },
    'alias.example': { 'policy-alias': 'big' },
    'nolevel.example': { mode: 'enforce', mxs: ['*.nolevel.example'] },
    'bad-level.example': { mode: 'enforce', mxs: [], level: 7 },
    'bad-mode.example': { mode: 'strict' },
    'bad-mx.example': { mxs: ['not a host'] },
    'bad-alias.example': { 'policy-alias': 'nope' },
    not_a_domain: { mode: 'enforce' },
  },
}

test('static list: valid entries load, broken ones are reported by domain', () => {
  const { list, problems } = parseStaticList(DOC)
  assert.equal(list.size, 4)
  assert.deepEqual(list.get('example.net'), { mode: 'enforce', mxs: ['.example.net'], level: 4 })
  assert.deepEqual(list.get('alias.example'), { mode: 'enforce', mxs: ['.mx.big.example'], level: undefined })
  assert.deepEqual(problems.map((p) => p.domain).sort(), [
    'bad-alias.example',
    'bad-level.example',
    'bad-mode.example',
    'bad-mx.example',
    'not_a_domain',
  ])
  assert.match(problems.find((p) => p.domain === 'bad-alias.example')!.reason, /unknown policy-alias "nope"/)
})

test('static answer: enforce counts as level 3 and secure; testing only as its level', () => {
  const { list } = parseStaticList(DOC)
  const enf = staticAnswer('nolevel.example', list)
  assert.equal(enf.level, 3)
  assert.equal(enf.tlsMode, 'secure')
  assert.deepEqual(enf.mxPatterns, ['*.nolevel.example'])
  assert.equal(staticAnswer('example.net', list).level, 4)
  const testing = staticAnswer('plain.example', list)
  assert.equal(testing.level, 2)
  assert.equal(testing.tlsMode, 'encrypt')
  assert.equal(staticAnswer('other.example', list).outcome, 'none')
})

test('static list file: missing is empty, bad JSON stops start-up naming the file', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-static-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  assert.equal(loadStaticList(path.join(dir, 'none.json')).list.size, 0)
  const bad = path.join(dir, 'bad.json')
  fs.writeFileSync(bad, '{"policies": {')
  assert.throws(
    () => loadStaticList(bad),
    (e: unknown) => e instanceof ConfigError && e.message.includes(bad),
  )
  fs.writeFileSync(bad, '[]')
  assert.throws(() => loadStaticList(bad), ConfigError)
  const good = path.join(dir, 'good.json')
  fs.writeFileSync(good, JSON.stringify(DOC))
  assert.equal(loadStaticList(good).list.size, 4)
})

test('the shipped config/linksec.domains.json loads', () => {
  const file = path.resolve(__dirname, '..', '..', '..', '..', '..', 'config', 'linksec.domains.json')
  const { problems } = loadStaticList(file)
  assert.deepEqual(problems, [])
})
