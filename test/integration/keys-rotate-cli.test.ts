/**
 * `linksec keys add|generate|rotate` as an operator runs them: `keys add`
 * refuses another key for a published address without --replace (naming
 * the fingerprint there), `keys rotate` publishes the new key beside the
 * old, which `keys list` shows with its retirement time, and `--replace`
 * replaces.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import { readKeyBlob } from '../../core/keys/material'
import { LINKSEC_BIN, run } from '../helpers/wks'

let dir: string
const linksec = (...args: string[]) => run(process.execPath, [LINKSEC_BIN, ...args, '--config', dir])
const fingerprints = async () =>
  (await readKeyBlob(fs.readFileSync(path.join(dir, 'keys', 'bob@rot.test.pgp')))).map((k) =>
    k.getFingerprint().toUpperCase(),
  )

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-rotate-cli-'))
  fs.writeFileSync(path.join(dir, 'linksec.ini'), '[log]\nlevel=warn\n[keys]\nrotation_overlap=3600\n')
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

test('keys add refuses without --replace; rotate keeps the old key published for the overlap', async () => {
  assert.equal(linksec('keys', 'generate', 'bob@rot.test').status, 0)
  const [first] = await fingerprints()
  const other = path.join(dir, 'other.asc')
  const { publicKey } = await openpgp.generateKey({ userIDs: [{ email: 'bob@rot.test' }], format: 'armored' })
  fs.writeFileSync(other, publicKey)
  const refused = linksec('keys', 'add', other)
  assert.equal(refused.status, 1)
  assert.match(refused.err, new RegExp(`bob@rot\\.test already has the key ${first}; add --replace`))
  assert.deepEqual(await fingerprints(), [first])

  const rotated = linksec('keys', 'rotate', 'bob@rot.test')
  assert.equal(rotated.status, 0, rotated.err)
  const both = await fingerprints()
  assert.equal(both.length, 2)
  assert.equal(both[0], first)
  const list = linksec('keys', 'list').out.toString()
  const line = list.split('\n').find((l) => l.includes(first!))!
  const until = Date.parse(/retires=(\S+)/.exec(line)![1]!)
  assert.ok(until > Date.now() + 3500_000 && until <= Date.now() + 3600_000, line)
  assert.match(
    list.split('\n').find((l) => l.includes(both[1]!))!,
    /sign=yes$/,
  )

  const replaced = linksec('keys', 'add', other, '--replace')
  assert.equal(replaced.status, 0, replaced.err)
  assert.equal((await fingerprints()).length, 1)
  assert.equal(fs.existsSync(path.join(dir, 'keys', 'bob@rot.test.pgp.retire')), false)
})
