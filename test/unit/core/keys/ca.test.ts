/**
 * The domain CA (core/keys/ca.ts): the CA key's shape (OpenPGP CA's user ID,
 * certify-only flag, domain notation), certify() per user ID of the CA's
 * domain only and idempotent, checkCertification() refusing a missing,
 * foreign, forged, revoked or expired certification and a revoked CA, and
 * the CA store's file modes and refusals.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import {
  CA_NOTATION,
  CaStore,
  checkCertification,
  createCaKey,
  normalizeFingerprint,
} from '../../../../core/keys/ca'
import { parseConfig } from '../../../../core/config'
import { ConfigError } from '../../../../core/errors'
import { caStoreFor } from '../../../../core/keys'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime } from '../../../../core/runtime'
import { checkSignSetup } from '../../../../core/sign/step'

let dir: string
const userKey = async (...emails: string[]) =>
  (
    await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: emails.map((email) => ({ email })),
      format: 'object',
    })
  ).publicKey

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-ca-'))
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

test('the CA key: openpgp-ca@DOMAIN, certify-only, the OpenPGP CA domain notation, no subkeys', async () => {
  const ca = await createCaKey('Example.ORG')
  assert.deepEqual(
    ca.users.map((u) => u.userID?.userID),
    ['OpenPGP CA <openpgp-ca@example.org>'],
  )
  assert.equal(ca.getSubkeys().length, 0)
  const self = ca.users[0]!.selfCertifications
  assert.equal(self.length, 1)
  assert.equal(self[0]!.signatureType, openpgp.enums.signature.certPositive)
  assert.deepEqual([...self[0]!.keyFlags!], [openpgp.enums.keyFlags.certifyKeys])
  const note = self[0]!.rawNotations.find((n) => n.name === CA_NOTATION)
  assert.equal(note && new TextDecoder().decode(note.value), 'domain=example.org')
  // The rewritten self-signature verifies (openpgp.js reads it as a valid key).
  await ca.verifyPrimaryKey()
  // Round trip through bytes keeps it.
  const again = await openpgp.readKey({ binaryKey: ca.toPublic().write() })
  assert.deepEqual([...(await again.getPrimaryUser()).selfCertification.keyFlags!], [1])
})

test('certify: the user IDs of its domain only, once; checkCertification finds them', async () => {
  const store = new CaStore(path.join(dir, 'secret', 'ca'))
  const ca = await store.init('example.org')
  const key = await userKey('alice@example.org', 'alice@other.example')
  const now = new Date()
  assert.deepEqual(await checkCertification(key, 'alice@example.org', ca.key, now), {
    valid: false,
    reason: 'key not certified by the domain CA',
  })
  const certified = await store.certify(key)
  assert.equal(key.users[0]!.otherCertifications.length, 0, "the caller's key is left alone")
  const [own, foreign] = certified.users
  assert.equal(own!.otherCertifications.length, 1)
  assert.equal(foreign!.otherCertifications.length, 0, 'a user ID of another domain is not certified')
  assert.equal((await checkCertification(certified, 'alice@example.org', ca.publicKey(), now)).valid, true)
  assert.equal((await checkCertification(certified, 'alice@other.example', ca.publicKey(), now)).valid, false)
  // Through bytes (as WKD serves it), and certifying again adds nothing.
  const parsed = await openpgp.readKey({ binaryKey: (await store.certify(certified)).write() })
  assert.equal(parsed.users[0]!.otherCertifications.length, 1)
  assert.equal((await checkCertification(parsed, 'ALICE@example.org', ca.publicKey(), now)).valid, true)
})

test('a certification by another key, or moved to another key, does not count', async () => {
  const store = new CaStore(path.join(dir, 's2', 'ca'))
  const ca = await store.init('example.org')
  const other = await new CaStore(path.join(dir, 's3', 'ca')).init('example.org')
  const key = await userKey('bob@example.org')
  const byOther = await other.certify(key)
  const r = await checkCertification(byOther, 'bob@example.org', ca.publicKey(), new Date())
  assert.equal(r.valid, false)
  // Mallory copies the CA's certification of bob's user ID onto her own key.
  const good = await ca.certify(key)
  const mallory = await userKey('bob@example.org')
  mallory.users[0]!.otherCertifications.push(...good.users[0]!.otherCertifications)
  const forged = await openpgp.readKey({ binaryKey: mallory.write() })
  assert.deepEqual(await checkCertification(forged, 'bob@example.org', ca.publicKey(), new Date()), {
    valid: false,
    reason: 'key not certified by the domain CA (its certification is invalid, expired or revoked)',
  })
})

test('a revoked certification, and every certification of a revoked CA, stop counting', async () => {
  const store = new CaStore(path.join(dir, 's4', 'ca'))
  const ca = await store.init('example.org')
  const key = await ca.certify(await userKey('carol@example.org'))
  assert.equal((await checkCertification(key, 'carol@example.org', ca.publicKey(), new Date())).valid, true)
  const withdrawn = await ca.revokeCertification(key, 'carol@example.org')
  const parsed = await openpgp.readKey({ binaryKey: withdrawn.write() })
  const soon = new Date(Date.now() + 2000)
  assert.equal((await checkCertification(parsed, 'carol@example.org', ca.publicKey(), soon)).valid, false)

  // Certified and withdrawn in the same second: the withdrawal is dated one
  // second later, or sq-wot would still authenticate the binding.
  const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 400)
  const certifiedAt = await ca.certify(await userKey('erin@example.org'), at)
  const late = await ca.revokeCertification(certifiedAt, 'erin@example.org', 'test', at)
  const created = (u: openpgp.User) => u.revocationSignatures.map((s) => s.created!.getTime())
  assert.deepEqual(created(late.users[0]!), [Math.floor(at.getTime() / 1000) * 1000 + 1000])
  const later = new Date(at.getTime() + 5000)
  assert.deepEqual(
    created((await ca.revokeCertification(certifiedAt, 'erin@example.org', 'test', later)).users[0]!),
    [Math.floor(later.getTime() / 1000) * 1000],
  )

  const revoked = await store.revoke('example.org', 'compromised')
  const r = await checkCertification(key, 'carol@example.org', revoked.publicKey(), new Date())
  assert.deepEqual(r, {
    valid: false,
    reason: 'key not certified by the domain CA (the domain CA key is revoked)',
  })
  const dan = await userKey('dan@example.org')
  await assert.rejects(() => revoked.certify(dan), /revoked/)
  // The store certifies nothing with a revoked CA, and refuses a second init without --replace.
  assert.equal((await store.certify(dan)).users[0]!.otherCertifications.length, 0)
  await assert.rejects(() => store.init('example.org'), /already has a domain CA/)
  const fresh = await store.init('example.org', { replace: true })
  assert.notEqual(fresh.fingerprint, revoked.fingerprint)
  assert.ok(fs.readdirSync(store.dir).some((f) => f.startsWith('example.org.key.revoked-')))
})

test('an expired certification does not count', async () => {
  const store = new CaStore(path.join(dir, 's5', 'ca'))
  const ca = await store.init('example.org')
  const key = await userKey('erin@example.org')
  const certified = await ca.certify(key, new Date(), 1)
  const later = new Date(Date.now() + 60_000)
  assert.equal((await checkCertification(certified, 'erin@example.org', ca.publicKey(), later)).valid, false)
  assert.equal(
    (await checkCertification(certified, 'erin@example.org', ca.publicKey(), new Date())).valid,
    true,
  )
})

test('the CA secret: directory 0700, file 0600; readable by others is refused by name', async () => {
  const store = new CaStore(path.join(dir, 's6', 'ca'))
  const ca = await store.init('example.net')
  assert.equal(fs.statSync(store.dir).mode & 0o777, 0o700)
  assert.equal(fs.statSync(ca.file).mode & 0o777, 0o600)
  store.assertPrivate()
  fs.chmodSync(ca.file, 0o644)
  await assert.rejects(() => store.get('example.net'), /readable by other users \(mode 644\); run chmod 600/)
  assert.throws(() => store.assertPrivate(), /chmod 600/)
  assert.throws(() => store.fileFor('../etc'), /not a domain name/)
})

test('normalizeFingerprint', () => {
  assert.equal(
    normalizeFingerprint('e649 53ef e22f d537 6937  172e 625c c9ad 8d7b 48b1'),
    'E64953EFE22FD5376937172E625CC9AD8D7B48B1',
  )
  assert.equal(normalizeFingerprint('E64953EF'), undefined)
  assert.equal(normalizeFingerprint('Z'.repeat(40)), undefined)
})

test('start-up: a CA secret others can read stops linksec serve (ConfigError naming the file), signing on or off', async () => {
  const conf = path.join(dir, 'conf-startup')
  fs.mkdirSync(conf)
  const rt = createRuntime(parseConfig({ main: { domain: 'example.org' } }, conf), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
  })
  checkSignSetup(rt)
  const ca = await caStoreFor(rt).init('example.org')
  checkSignSetup(rt)
  fs.chmodSync(ca.file, 0o640)
  assert.throws(
    () => checkSignSetup(rt),
    (e: unknown) =>
      e instanceof ConfigError && /example\.org\.key is readable by other users .*chmod 600/.test(e.message),
  )
})
