/**
 * `linksec keys add` and the secret-key store build a file name from an
 * address (core/keys/store.ts keyFilePath): for any address — `../`, NUL,
 * `/`, `\`, `%`, very long, Unicode — the file is directly inside the keys
 * directory or the address is refused; the name maps back to the address.
 * Also through KeyStore.add with a key whose user ID is a hostile address.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, test } from 'node:test'
import fc from 'fast-check'
import * as openpgp from 'openpgp'
import { LinksecError } from '../../core/errors'
import { addressOfKeyFile, keyFilePath, KeyStore } from '../../core/keys/store'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-keyfile-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))

const piece = fc.constantFrom(
  '../',
  '..',
  '/',
  '\\',
  '\0',
  '%2F',
  '%',
  '.',
  '日本',
  'é',
  '\u202e',
  'a',
  '@',
  ' ',
)
const hostile = fc.oneof(
  fc.array(piece, { maxLength: 30 }).map((p) => `${p.join('')}@example.org`),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.integer({ min: 200, max: 2000 }).map((n) => `${'a'.repeat(n)}@example.org`),
)

test('property: a key file is always directly inside the directory, or refused', () => {
  fc.assert(
    fc.property(hostile, fc.constantFrom('.pgp', '.key'), (address, suffix) => {
      let file: string
      try {
        file = keyFilePath(dir, address, suffix)
      } catch (e) {
        assert.ok(e instanceof LinksecError && e.code === 'LINKSEC_KEY_ADDRESS', String(e))
        return
      }
      assert.equal(path.dirname(file), path.resolve(dir))
      const name = path.basename(file)
      assert.ok(!name.includes('/') && !name.includes('\0') && name !== '..' && name !== '.')
      assert.ok(Buffer.byteLength(name) <= 255)
      assert.equal(addressOfKeyFile(name.slice(0, -suffix.length)), address)
    }),
  )
})

test('KeyStore.add with a key for a quoted local part holding ../ writes inside the directory', async () => {
  const address = '"../../escape"@example.org'
  const { publicKey } = await openpgp
    .generateKey({ userIDs: [{ name: 'x', email: address }], format: 'binary' })
    .catch(() => openpgp.generateKey({ userIDs: [{ email: 'plain@example.org' }], format: 'binary' }))
  const store = new KeyStore(path.join(dir, 'keys'))
  try {
    const k = await store.add(Buffer.from(publicKey), address)
    assert.equal(path.dirname(k.file), path.resolve(dir, 'keys'))
    assert.ok((await store.list()).some((s) => s.address === k.address))
  } catch (e) {
    // openpgp.js refused the user ID, or the store refused the address: nothing was written outside.
    assert.ok(e instanceof LinksecError, String(e))
  }
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f !== 'keys'),
    [],
    'nothing beside the keys directory',
  )
  assert.ok(!fs.existsSync(path.resolve(dir, '..', 'escape@example.org.pgp')))
})
