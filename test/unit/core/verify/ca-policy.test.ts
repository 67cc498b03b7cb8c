/**
 * verifyMessage with a declared domain CA (core/verify/ca-policy.ts), keys
 * from a fake WKD finder: a certified key passes with policy.ca=; an
 * uncertified one (the attacker's key on the sender's WKD) fails with
 * "key not certified by the domain CA"; an unvalidated ca= is reported in
 * the comment and ignored; a static pin counts like a validated one; a CA
 * key that cannot be fetched is a temperror; local keys need no certificate.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../../../core/config'
import { CaStore, parseAddress, type DomainCa, type KeyFinder } from '../../../../core/keys'
import { ringFor } from '../../../../core/keys/material'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime, type Runtime } from '../../../../core/runtime'
import { verifyMessage, type CaDeclaration, type SignaturePolicyLookup } from '../../../../core/verify'
import { assembleSigned, textPart } from '../../../helpers/signers'

let dir: string
let ca: DomainCa
let alice: openpgp.PrivateKey
let mallory: openpgp.PrivateKey
let certifiedAlice: openpgp.PublicKey

const gen = async (email: string) =>
  (await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ email }], format: 'object' }))
    .privateKey

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-ca-verify-'))
  ca = await new CaStore(path.join(dir, 'secret', 'ca')).init('example.org')
  alice = await gen('alice@example.org')
  mallory = await gen('alice@example.org')
  certifiedAlice = await ca.certify(alice.toPublic())
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

function runtime(domainsJson?: object): Runtime {
  if (domainsJson) fs.writeFileSync(path.join(dir, 'linksec.domains.json'), JSON.stringify(domainsJson))
  else fs.rmSync(path.join(dir, 'linksec.domains.json'), { force: true })
  const cfg = parseConfig({ main: { authserv_id: 'mx.test' }, keys: { methods: 'wkd' } }, dir)
  return createRuntime(cfg, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
}

/** A WKD that serves `keys` per address. */
function wkd(keys: Record<string, openpgp.PublicKey | undefined>): KeyFinder {
  return {
    store: undefined as never,
    find: async (a) => {
      const k = keys[a.address]
      if (!k) return { kind: 'notfound', reason: `no OpenPGP key is published for ${a.address}` }
      return { kind: 'found', ring: ringFor(a.address, [k]), source: 'wkd_advanced' }
    },
  }
}

function declares(d: CaDeclaration): SignaturePolicyLookup {
  const lookup: SignaturePolicyLookup = async () => 'optional'
  lookup.ca = async () => d
  return lookup
}

async function signedBy(key: openpgp.PrivateKey, body = 'hello\n'): Promise<Buffer> {
  const inner = textPart(body)
  const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message, signingKeys: key, detached: true })) as string
  return assembleSigned({ from: 'Alice <alice@example.org>' }, inner, sig)
}

const ar = (d: Awaited<ReturnType<typeof verifyMessage>>) => {
  const h = d.headers.at(-1)!
  return h.op === 'prepend' ? h.value : ''
}

test('a declared, validated ca=: the certified key passes with policy.ca=, the attacker key fails', async () => {
  const declared = declares({ kind: 'declared', fingerprint: ca.fingerprint, validated: true })
  const good = await verifyMessage(runtime(), await signedBy(alice), {
    signaturePolicy: declared,
    finder: wkd({ 'alice@example.org': certifiedAlice, 'openpgp-ca@example.org': ca.publicKey() }),
  })
  assert.equal(good.result, 'pass', good.facts.reason)
  assert.match(ar(good), new RegExp(`policy\\.ca=${ca.fingerprint}`))

  // The web server now serves mallory's key for alice: it signs, but lacks the CA's certification.
  const swapped = wkd({ 'alice@example.org': mallory.toPublic(), 'openpgp-ca@example.org': ca.publicKey() })
  const bad = await verifyMessage(runtime(), await signedBy(mallory), {
    signaturePolicy: declared,
    finder: swapped,
  })
  assert.equal(bad.result, 'fail')
  assert.equal(bad.facts.reason, 'key not certified by the domain CA')
  assert.equal(bad.verdict.code, 550)
  assert.equal(bad.verdict.enhanced, '5.7.1')
  assert.match(bad.verdict.text!, /alice@example\.org.*key not certified by the domain CA/)
  assert.match(ar(bad), /x-openpgp=fail reason="key not certified by the domain CA"/)

  // A certification by another CA (the attacker's own "openpgp-ca@") does not help.
  const fake = await new CaStore(path.join(dir, 'fake', 'ca')).init('example.org')
  const fakeCertified = await fake.certify(mallory.toPublic())
  const forged = await verifyMessage(runtime(), await signedBy(mallory), {
    signaturePolicy: declared,
    finder: wkd({ 'alice@example.org': fakeCertified, 'openpgp-ca@example.org': fake.publicKey() }),
  })
  assert.equal(forged.result, 'temperror', 'the CA key at WKD is not the declared one')
  assert.match(forged.facts.reason, /is not published; a key with another fingerprint is/)
  assert.equal(forged.verdict.code, 451)
})

test('an unvalidated ca= is reported in the comment and ignored', async () => {
  const d = await verifyMessage(runtime(), await signedBy(mallory), {
    signaturePolicy: declares({ kind: 'declared', fingerprint: ca.fingerprint, validated: false }),
    finder: wkd({ 'alice@example.org': mallory.toPublic() }),
  })
  assert.equal(d.result, 'pass')
  assert.doesNotMatch(ar(d), /policy\.ca=/)
  assert.match(
    ar(d),
    new RegExp(
      `\\(ca=${ca.fingerprint} ignored: the _linksec\\.example\\.org answer was not DNSSEC-validated\\)`,
    ),
  )
})

test('a static pin counts without DNS; no declaration, no rule', async () => {
  const pinned = runtime({
    policies: { 'example.org': { mode: 'testing', ca: ca.fingerprint.toLowerCase() } },
  })
  const none = declares({ kind: 'none' })
  const d = await verifyMessage(pinned, await signedBy(mallory), {
    signaturePolicy: none,
    finder: wkd({ 'alice@example.org': mallory.toPublic(), 'openpgp-ca@example.org': ca.publicKey() }),
  })
  assert.equal(d.result, 'fail')
  assert.equal(d.facts.reason, 'key not certified by the domain CA')
  const free = await verifyMessage(runtime(), await signedBy(mallory), {
    signaturePolicy: none,
    finder: wkd({ 'alice@example.org': mallory.toPublic() }),
  })
  assert.equal(free.result, 'pass')
})

test('a CA key that cannot be fetched, or a declaration that cannot be learned: temperror 451', async () => {
  const d = await verifyMessage(runtime(), await signedBy(alice), {
    signaturePolicy: declares({ kind: 'declared', fingerprint: ca.fingerprint, validated: true }),
    finder: wkd({ 'alice@example.org': certifiedAlice }),
  })
  assert.equal(d.result, 'temperror')
  assert.match(
    d.facts.reason,
    /the domain CA key .* of example\.org \(at openpgp-ca@example\.org\) could not be fetched/,
  )
  assert.equal(d.verdict.code, 451)
  const u = await verifyMessage(runtime(), await signedBy(alice), {
    signaturePolicy: declares({ kind: 'unknown', reason: 'SERVFAIL' }),
    finder: wkd({ 'alice@example.org': certifiedAlice }),
  })
  assert.equal(u.result, 'temperror')
  assert.match(u.facts.reason, /could not learn whether example\.org declares a domain CA: SERVFAIL/)
})

test('a revoked CA certifies nothing', async () => {
  const store = new CaStore(path.join(dir, 'rev', 'ca'))
  const rca = await store.init('example.org')
  const k = await rca.certify(alice.toPublic())
  const revoked = await store.revoke('example.org', 'compromised')
  const d = await verifyMessage(runtime(), await signedBy(alice), {
    signaturePolicy: declares({ kind: 'declared', fingerprint: rca.fingerprint, validated: true }),
    finder: wkd({ 'alice@example.org': k, 'openpgp-ca@example.org': revoked.publicKey() }),
  })
  assert.equal(d.result, 'fail')
  assert.equal(d.facts.reason, 'key not certified by the domain CA (the domain CA key is revoked)')
  assert.ok(parseAddress('openpgp-ca@example.org'))
})

test('after a swap on WKD, mail the certified key signed still passes (kept key), the attacker fails', async () => {
  const rt = runtime()
  const declared = declares({ kind: 'declared', fingerprint: ca.fingerprint, validated: true })
  const before = wkd({ 'alice@example.org': certifiedAlice, 'openpgp-ca@example.org': ca.publicKey() })
  const legit = await signedBy(alice, 'queued before the swap\n')
  assert.equal(
    (await verifyMessage(rt, await signedBy(alice), { signaturePolicy: declared, finder: before })).result,
    'pass',
  )
  const after = wkd({ 'alice@example.org': mallory.toPublic(), 'openpgp-ca@example.org': ca.publicKey() })
  const attacker = await verifyMessage(rt, await signedBy(mallory), {
    signaturePolicy: declared,
    finder: after,
  })
  assert.equal(attacker.result, 'fail')
  assert.equal(attacker.facts.reason, 'key not certified by the domain CA')
  const queued = await verifyMessage(rt, legit, { signaturePolicy: declared, finder: after })
  assert.equal(queued.result, 'pass', queued.facts.reason)
  assert.match(ar(queued), /\(key from kept\)/)
  // Without a counted CA the kept key is not used: the published key decides.
  const rt2 = runtime()
  const none = declares({ kind: 'none' })
  await verifyMessage(rt2, await signedBy(alice), { signaturePolicy: none, finder: before })
  assert.equal((await verifyMessage(rt2, legit, { signaturePolicy: none, finder: after })).result, 'fail')
  // The CA revoking its certification (published with the key) ends it.
  const withdrawn = await ca.revokeCertification(certifiedAlice, 'alice@example.org')
  const revokedNow = wkd({ 'alice@example.org': withdrawn, 'openpgp-ca@example.org': ca.publicKey() })
  await new Promise((r) => setTimeout(r, 1100))
  const late = await verifyMessage(runtime(), legit, { signaturePolicy: declared, finder: revokedNow })
  assert.equal(late.result, 'fail')
})
