/**
 * With `ca=` declared (validated), no sequence of key publications on the
 * sender's WKD makes a key the domain CA did not certify pass
 * (core/verify/ca-policy.ts, core/verify/continuity.ts).
 *
 * The world: alice@example.org's WKD serves, step by step, any mix of her
 * two certified keys, the attacker's keys (bare, certified by a CA of the
 * attacker's own, carrying the real CA's certification copied from alice's
 * key, or alice's key with its certification revoked), and at
 * openpgp-ca@example.org the real CA key, the attacker's CA key, the real
 * CA revoked, or nothing. After each publication a message signed by any of
 * the keys is verified on one runtime (so key continuity carries over), under
 * any [verify] on_key_change. A pass must always be by a key the real, unrevoked
 * CA certified; a temperror or fail is fine.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../core/config'
import { CaStore, type KeyFinder } from '../../core/keys'
import { readKeyBlob, ringFor } from '../../core/keys/material'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { verifyMessage, type SignaturePolicyLookup } from '../../core/verify'
import { assembleSigned, textPart } from '../helpers/signers'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-ca-prop-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))

interface Signer {
  name: string
  secret: openpgp.PrivateKey
  /** What WKD may serve for it: variants of the public key; any subset at a time. */
  published: openpgp.PublicKey[]
  /** Whether a served subset holds a copy the real, unrevoked CA vouches for (a copy with a revocation spoils it). */
  vouched: (served: Set<number>) => boolean
  /** Whether a served subset carries the CA's revocation of this key's certification. */
  withdrawn: (served: Set<number>) => boolean
}

let signers: Signer[]
let caKeys: { name: string; key: openpgp.PublicKey | undefined; real: boolean }[]
let caFingerprint: string
const messages = new Map<string, Buffer>()

const gen = async (email: string) =>
  (await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ email }], format: 'object' }))
    .privateKey

before(async () => {
  const store = new CaStore(path.join(dir, 'real', 'ca'))
  const ca = await store.init('example.org')
  const fake = await new CaStore(path.join(dir, 'fake', 'ca')).init('example.org')
  caFingerprint = ca.fingerprint
  const a1 = await gen('alice@example.org')
  const a2 = await gen('alice@example.org')
  const m1 = await gen('alice@example.org')
  const m2 = await gen('alice@example.org')
  const a1c = await ca.certify(a1.toPublic())
  const a2c = await ca.certify(a2.toPublic())
  const reread = async (k: openpgp.Key) => (await readKeyBlob(Buffer.from(k.write())))[0]!
  const a1revoked = await reread(await ca.revokeCertification(a1c, 'alice@example.org', 'test'))
  const m1copied = m1.toPublic()
  m1copied.users[0]!.otherCertifications.push(...a1c.users[0]!.otherCertifications)
  const m1forged = await reread(m1copied)
  const never = () => false
  const always = () => true
  signers = [
    // a1: certified, bare, certification revoked by the CA.
    {
      name: 'a1',
      secret: a1,
      published: [a1c, a1.toPublic(), a1revoked],
      vouched: (v) => v.has(0) && !v.has(2),
      withdrawn: (v) => v.has(2),
    },
    { name: 'a2', secret: a2, published: [a2c, a2.toPublic()], vouched: (v) => v.has(0), withdrawn: never },
    // The attacker's keys for alice: bare, certified by the attacker's CA, the real CA's certification copied on.
    {
      name: 'm1',
      secret: m1,
      published: [m1.toPublic(), await fake.certify(m1.toPublic()), m1forged],
      vouched: never,
      withdrawn: always,
    },
    { name: 'm2', secret: m2, published: [m2.toPublic()], vouched: never, withdrawn: always },
  ]
  caKeys = [
    { name: 'real', key: ca.publicKey(), real: true },
    { name: 'fake', key: fake.publicKey(), real: false },
    { name: 'none', key: undefined, real: false },
    // The real CA's fingerprint, revoked: a store holding the same key, revoked.
    { name: 'revoked', key: (await revokedCopy(store)).publicKey(), real: false },
  ]
  for (const s of signers) {
    const inner = textPart(`from ${s.name}\n`)
    const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
    const sig = (await openpgp.sign({ message, signingKeys: s.secret, detached: true })) as string
    messages.set(s.name, assembleSigned({ from: 'Alice <alice@example.org>' }, inner, sig))
  }
})

/** The real CA, revoked, from a copy of its store (the real one stays usable). */
async function revokedCopy(store: CaStore) {
  const copyDir = path.join(dir, 'real-copy', 'ca')
  fs.mkdirSync(copyDir, { recursive: true, mode: 0o700 })
  fs.copyFileSync(store.fileFor('example.org'), path.join(copyDir, 'example.org.key'))
  fs.chmodSync(path.join(copyDir, 'example.org.key'), 0o600)
  return new CaStore(copyDir).revoke('example.org', 'compromised')
}

const declared: SignaturePolicyLookup = Object.assign(async () => 'optional' as const, {
  ca: async () => ({ kind: 'declared' as const, fingerprint: caFingerprint, validated: true }),
})

test('property: no sequence of key publications makes a CA-uncertified key pass when ca= is declared', async () => {
  let passes = 0
  const publication = fc.record({
    // Per signer, a bitmask of the variants on WKD now.
    served: fc.array(fc.nat({ max: 7 }), { minLength: 4, maxLength: 4 }),
    ca: fc.nat({ max: 3 }),
    signer: fc.nat({ max: 3 }),
  })
  await fc.assert(
    fc.asyncProperty(
      fc.array(publication, { minLength: 1, maxLength: 6 }),
      fc.constantFrom('tag', 'tempfail', 'reject'),
      async (steps, onKeyChange) => {
        const cfg = parseConfig(
          {
            main: { authserv_id: 'mx.test' },
            keys: { methods: 'wkd' },
            verify: { on_key_change: onKeyChange },
          },
          dir,
        )
        const rt = createRuntime(cfg, {
          log: silentLogger,
          metrics: createMetrics({ processMetrics: false }),
        })
        // A certified key that passed once may pass again while WKD serves another key (the kept key).
        const passedBefore = new Set<string>()
        for (const step of steps) {
          const served = signers.map(
            (s, i) => new Set(s.published.map((_, v) => v).filter((v) => (step.served[i]! >> v) & 1)),
          )
          const onWkd = signers.flatMap((s, i) => s.published.filter((_, v) => served[i]!.has(v)))
          const ca = caKeys[step.ca]!
          const finder: KeyFinder = {
            store: undefined as never,
            find: async (a) => {
              const keys = a.address === 'openpgp-ca@example.org' ? (ca.key ? [ca.key] : []) : onWkd
              const ring = ringFor(a.address, keys)
              return ring.keys.length
                ? { kind: 'found', ring, source: 'wkd_advanced' }
                : { kind: 'notfound', reason: `no OpenPGP key is published for ${a.address}` }
            },
          }
          const s = signers[step.signer]!
          const d = await verifyMessage(rt, messages.get(s.name)!, { finder, signaturePolicy: declared })
          if (d.result === 'pass') {
            passes++
            const v = served[step.signer]!
            const allowed = ca.real && !s.withdrawn(v) && (s.vouched(v) || passedBefore.has(s.name))
            assert.ok(allowed, `${s.name} passed with CA ${ca.name}`)
            passedBefore.add(s.name)
            assert.equal(d.facts.ca?.fingerprint, caFingerprint)
          }
        }
      },
    ),
    { numRuns: 60 },
  )
  // Not vacuous: legitimate keys did pass along the way.
  assert.ok(passes > 0, 'no message passed in any run')
})
