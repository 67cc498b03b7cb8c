/**
 * verifyMessage end to end in-process: openpgp.js-signed PGP/MIME messages,
 * keys from a local store or a fake finder, and the [verify] policy: the
 * Authentication-Results field, forged fields removed, 550 5.7.1 / 451 4.7.5
 * replies naming the sender, tag and quarantine modes, deadline and size.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../../../core/config'
import type { KeyFinder } from '../../../../core/keys'
import { keyStoreFor } from '../../../../core/keys'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime, type Runtime } from '../../../../core/runtime'
import { verifyMessage, type SignaturePolicy } from '../../../../core/verify'
import { assembleSigned, plainMessage, textPart } from '../../../helpers/signers'

let dir: string
let key: openpgp.PrivateKey

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-verify-'))
  key = (
    await openpgp.generateKey({ userIDs: [{ name: 'Alice', email: 'alice@example.org' }], format: 'object' })
  ).privateKey
  const rt = runtime()
  await keyStoreFor(rt).add(Buffer.from(key.toPublic().write()))
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

function runtime(verify: Record<string, string | number | boolean> = {}): Runtime {
  const cfg = parseConfig({ main: { authserv_id: 'mx.test' }, keys: { methods: 'local' }, verify }, dir)
  return createRuntime(cfg, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
}

async function signed(
  inner: Buffer,
  from = 'Alice <alice@example.org>',
  extra: string[] = [],
): Promise<Buffer> {
  const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message, signingKeys: key, detached: true })) as string
  return assembleSigned({ from, extra }, inner, sig)
}

const policy = (p: SignaturePolicy) => async () => p

test('a good signature passes; our A-R is prepended, and verify asks for nothing else', async () => {
  const rt = runtime()
  const msg = await signed(textPart('hello\n'), 'Alice <alice@example.org>', [
    'Authentication-Results: mx.test; x-openpgp=pass header.from=alice@example.org',
    'Authentication-Results: other.example; spf=pass',
    'Authentication-Results: MX.TEST (forged); dkim=pass',
  ])
  const d = await verifyMessage(rt, msg, { signaturePolicy: policy('optional') })
  assert.equal(d.result, 'pass')
  assert.equal(d.verdict.action, 'continue')
  // Forged fields claiming our id are the pipeline's inbound-link step's to delete (test/unit/core/message).
  assert.equal(d.headers.length, 1)
  const ar = d.headers.at(-1)!
  assert.equal(ar.op, 'prepend')
  assert.equal(
    ar.op === 'prepend' && ar.value,
    `mx.test; x-openpgp=pass header.from=alice@example.org body.openpgp-fingerprint=${key.getFingerprint().toUpperCase()} (key from local)`,
  )
  assert.match(await rt.metrics.registry.metrics(), /linksec_signature_results_total\{result="pass"\} 1/)
})

test('an altered body fails: 550 5.7.1 naming the sender and the reason; tag and quarantine modes', async () => {
  const good = await signed(textPart('pay 10 EUR\n'))
  const bad = Buffer.from(good.toString('latin1').replace('pay 10', 'pay 99'), 'latin1')
  const d = await verifyMessage(runtime(), bad, { signaturePolicy: policy('optional') })
  assert.equal(d.result, 'fail')
  assert.equal(d.verdict.action, 'reject')
  assert.equal(d.verdict.code, 550)
  assert.equal(d.verdict.enhanced, '5.7.1')
  assert.match(d.verdict.text!, /alice@example\.org/)
  assert.match(d.verdict.text!, /does not match the message/)
  const tagged = await verifyMessage(runtime({ on_fail: 'tag' }), bad, {
    signaturePolicy: policy('optional'),
  })
  assert.equal(tagged.verdict.action, 'continue')
  assert.equal(tagged.result, 'fail')
  const q = await verifyMessage(runtime({ on_fail: 'quarantine' }), bad, {
    signaturePolicy: policy('optional'),
  })
  assert.equal(q.verdict.action, 'quarantine')
})

test('unsigned mail: accepted unless the domain declares sig=required (550 5.7.1); unknown -> temperror, tagged', async () => {
  const plain = plainMessage({ from: 'alice@example.org' })
  const opt = await verifyMessage(runtime(), plain, { signaturePolicy: policy('optional') })
  assert.equal(opt.result, 'none')
  assert.equal(opt.verdict.action, 'continue')
  const req = await verifyMessage(runtime(), plain, { signaturePolicy: policy('required') })
  assert.equal(req.verdict.action, 'reject')
  assert.equal(req.verdict.enhanced, '5.7.1')
  assert.match(req.verdict.text!, /example\.org declares .*sig=required.*alice@example\.org is not signed/)
  const unknown = await verifyMessage(runtime(), plain, { signaturePolicy: policy('unknown') })
  assert.equal(unknown.result, 'temperror')
  assert.equal(unknown.verdict.action, 'continue')
  const quarantined = await verifyMessage(runtime({ on_missing_required: 'quarantine' }), plain, {
    signaturePolicy: policy('required'),
  })
  assert.equal(quarantined.verdict.action, 'quarantine')
})

test('a temporary key lookup failure on a signed message is 451 4.7.5', async () => {
  const finder: KeyFinder = {
    store: undefined as never,
    find: async () => ({ kind: 'temperror', reason: 'wkd_advanced: HTTP 503' }),
  }
  const d = await verifyMessage(runtime(), await signed(textPart('x\n')), {
    finder,
    signaturePolicy: policy('optional'),
  })
  assert.equal(d.result, 'temperror')
  assert.equal(d.verdict.code, 451)
  assert.equal(d.verdict.enhanced, '4.7.5')
  assert.match(d.verdict.text!, /alice@example\.org.*HTTP 503/)
})

test('the deadline turns a hanging lookup into temperror', async () => {
  const finder: KeyFinder = { store: undefined as never, find: () => new Promise(() => undefined) }
  const d = await verifyMessage(runtime({ deadline_ms: 100 }), await signed(textPart('x\n')), {
    finder,
    signaturePolicy: policy('optional'),
  })
  assert.equal(d.result, 'temperror')
  assert.match(d.facts.reason, /deadline_ms/)
  assert.equal(d.verdict.code, 451)
})

test('no key published: neutral; with sig=required that is rejected like unsigned mail', async () => {
  const msg = await signed(textPart('x\n'), 'Bob <bob@example.org>')
  const d = await verifyMessage(runtime(), msg, { signaturePolicy: policy('optional') })
  assert.equal(d.result, 'neutral')
  assert.equal(d.verdict.action, 'continue')
  const r = await verifyMessage(runtime(), msg, { signaturePolicy: policy('required') })
  assert.equal(r.verdict.action, 'reject')
  assert.match(r.verdict.text!, /no signature that can be checked/)
})

test('messages over max_message_bytes are neutral; verification off changes nothing', async () => {
  const big = await signed(textPart('y'.repeat(3000) + '\n'))
  const d = await verifyMessage(runtime({ max_message_bytes: 2048 }), big, {
    signaturePolicy: policy('optional'),
  })
  assert.equal(d.result, 'neutral')
  const off = await verifyMessage(runtime({ enabled: false }), big)
  assert.deepEqual(off.headers, [])
  assert.equal(off.verdict.action, 'continue')
})

test('two From mailboxes on a signed message: permerror', async () => {
  const d = await verifyMessage(
    runtime(),
    await signed(textPart('x\n'), 'alice@example.org, eve@example.org'),
    {
      signaturePolicy: policy('optional'),
    },
  )
  assert.equal(d.result, 'permerror')
})

test('several From fields cannot hide a domain that requires signatures', async () => {
  const asked: string[] = []
  const lookup = async (d: string) => (
    asked.push(d),
    d === 'bank.example' ? ('required' as const) : ('optional' as const)
  )
  const twice = Buffer.from(
    'From: friend@other.example\r\nFrom: ceo@bank.example\r\nSubject: x\r\n\r\nunsigned\r\n',
    'latin1',
  )
  const d = await verifyMessage(runtime(), twice, { signaturePolicy: lookup })
  assert.equal(d.verdict.action, 'reject')
  assert.match(d.verdict.text!, /^bank\.example declares/)
  assert.deepEqual(asked, ['other.example', 'bank.example'])
})
