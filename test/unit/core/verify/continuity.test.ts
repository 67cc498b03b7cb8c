/**
 * Key continuity through verifyMessage (core/verify/continuity.ts,
 * core/keys/continuity.ts): the first key seen for an address is
 * remembered; another key is a change, counted in
 * linksec_key_changes_total{certified}; explained by a published overlap or
 * the declared CA's certification it passes silently, unexplained it gets
 * policy.key-change= and [verify] on_key_change (tag remembers the new key,
 * tempfail 451 4.7.1 and reject 550 5.7.1 do not). The memory is bounded
 * and shared through a second level (as Redis is).
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import type { SharedCache } from '../../../../core/cache'
import { parseConfig } from '../../../../core/config'
import { CaStore, KeyContinuity, type KeyFinder } from '../../../../core/keys'
import { ringFor } from '../../../../core/keys/material'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime, type Runtime } from '../../../../core/runtime'
import { verifyMessage, type SignaturePolicyLookup } from '../../../../core/verify'
import { assembleSigned, textPart } from '../../../helpers/signers'

let dir: string
let k1: openpgp.PrivateKey
let k2: openpgp.PrivateKey

const gen = async () =>
  (
    await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: [{ email: 'alice@example.org' }],
      format: 'object',
    })
  ).privateKey

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-continuity-'))
  k1 = await gen()
  k2 = await gen()
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

const noCa: SignaturePolicyLookup = async () => 'optional'

function runtime(onKeyChange = 'tag'): Runtime {
  const cfg = parseConfig(
    { main: { authserv_id: 'mx.test' }, keys: { methods: 'wkd' }, verify: { on_key_change: onKeyChange } },
    dir,
  )
  return createRuntime(cfg, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
}

const wkd = (...keys: openpgp.PublicKey[]): KeyFinder => ({
  store: undefined as never,
  find: async (a) => {
    const ring = ringFor(a.address, a.address.startsWith('openpgp-ca@') ? keys.slice(-1) : keys)
    return ring.keys.length
      ? { kind: 'found', ring, source: 'wkd_advanced' }
      : { kind: 'notfound', reason: `no OpenPGP key is published for ${a.address}` }
  },
})

async function signedBy(key: openpgp.PrivateKey): Promise<Buffer> {
  const inner = textPart('hello\n')
  const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message, signingKeys: key, detached: true })) as string
  return assembleSigned({ from: 'Alice <alice@example.org>' }, inner, sig)
}

const arOf = (d: Awaited<ReturnType<typeof verifyMessage>>) => {
  const h = d.headers.at(-1)!
  return h.op === 'prepend' ? h.value : ''
}
const fpr = (k: openpgp.Key) => k.getFingerprint().toUpperCase()

test('tag: an unexplained change passes with policy.key-change=<old>, is counted, and the new key is remembered', async () => {
  const rt = runtime('tag')
  const first = await verifyMessage(rt, await signedBy(k1), {
    finder: wkd(k1.toPublic()),
    signaturePolicy: noCa,
  })
  assert.equal(first.result, 'pass')
  assert.doesNotMatch(arOf(first), /key-change/)
  const swapped = await verifyMessage(rt, await signedBy(k2), {
    finder: wkd(k2.toPublic()),
    signaturePolicy: noCa,
  })
  assert.equal(swapped.result, 'pass')
  assert.equal(swapped.verdict.action, 'continue')
  assert.match(arOf(swapped), new RegExp(`policy\\.key-change=${fpr(k1)}`))
  assert.match(arOf(swapped), /not explained by the domain CA or a published overlap/)
  assert.match(await rt.metrics.registry.metrics(), /linksec_key_changes_total\{certified="false"\} 1/)
  const again = await verifyMessage(rt, await signedBy(k2), {
    finder: wkd(k2.toPublic()),
    signaturePolicy: noCa,
  })
  assert.doesNotMatch(arOf(again), /key-change/, 'remembered after tag')
})

test('tempfail and reject: 451 4.7.1 / 550 5.7.1 naming both keys; the change is not remembered', async () => {
  for (const [mode, code, enhanced] of [
    ['tempfail', 451, '4.7.1'],
    ['reject', 550, '5.7.1'],
  ] as const) {
    const rt = runtime(mode)
    await verifyMessage(rt, await signedBy(k1), { finder: wkd(k1.toPublic()), signaturePolicy: noCa })
    for (let i = 0; i < 2; i++) {
      const d = await verifyMessage(rt, await signedBy(k2), {
        finder: wkd(k2.toPublic()),
        signaturePolicy: noCa,
      })
      assert.equal(d.verdict.code, code, mode)
      assert.equal(d.verdict.enhanced, enhanced)
      assert.match(
        d.verdict.text!,
        new RegExp(`alice@example\\.org changed \\(from ${fpr(k1)} to ${fpr(k2)}\\)`),
      )
    }
    // The old key still passes: mail signed before the swap is not refused.
    const old = await verifyMessage(rt, await signedBy(k1), {
      finder: wkd(k1.toPublic(), k2.toPublic()),
      signaturePolicy: noCa,
    })
    assert.equal(old.verdict.action, 'continue')
  }
})

test('explained changes pass silently: a published overlap, or the declared CA certifies the new key', async () => {
  const rt = runtime('reject')
  await verifyMessage(rt, await signedBy(k1), { finder: wkd(k1.toPublic()), signaturePolicy: noCa })
  const overlap = await verifyMessage(rt, await signedBy(k2), {
    finder: wkd(k1.toPublic(), k2.toPublic()),
    signaturePolicy: noCa,
  })
  assert.equal(overlap.verdict.action, 'continue')
  assert.doesNotMatch(arOf(overlap), /key-change/)

  const ca = await new CaStore(path.join(dir, 'secret', 'ca')).init('example.org')
  const declared: SignaturePolicyLookup = Object.assign(async () => 'optional' as const, {
    ca: async () => ({ kind: 'declared' as const, fingerprint: ca.fingerprint, validated: true }),
  })
  const k3 = await gen()
  const rt2 = runtime('reject')
  const c1 = await ca.certify(k1.toPublic())
  await verifyMessage(rt2, await signedBy(k1), { finder: wkd(c1, ca.publicKey()), signaturePolicy: declared })
  const c3 = await ca.certify(k3.toPublic())
  const d = await verifyMessage(rt2, await signedBy(k3), {
    finder: wkd(c3, ca.publicKey()),
    signaturePolicy: declared,
  })
  assert.equal(d.result, 'pass')
  assert.equal(d.verdict.action, 'continue')
  assert.match(await rt2.metrics.registry.metrics(), /linksec_key_changes_total\{certified="true"\} 1/)
})

test('the memory: bounded per address count and per address keys, shared through the second level', async () => {
  const map = new Map<string, string>()
  const shared: SharedCache = {
    get: async (k) => map.get(k),
    set: async (k, v) => void map.set(k, v),
  }
  let now = 1_000_000
  const a = new KeyContinuity({ max: 2, now: () => now, shared })
  const b = new KeyContinuity({ max: 2, now: () => now, shared })
  const f = (n: number) => n.toString(16).toUpperCase().padStart(40, '0')
  for (let i = 1; i <= 6; i++) {
    now += 1000
    await a.remember('x@example.org', f(i))
  }
  assert.deepEqual(
    (await a.seen('x@example.org')).map((k) => k.fpr),
    [f(6), f(5), f(4), f(3)],
  )
  // Host b never saw x@, but the fleet did.
  assert.equal((await b.seen('X@example.org'))[0]!.fpr, f(6))
  await a.remember('y@example.org', f(7))
  await a.remember('z@example.org', f(8))
  map.clear()
  assert.deepEqual(await a.seen('x@example.org'), [], 'the least recently used address was dropped')
})
