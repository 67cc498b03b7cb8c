/**
 * Hostile messages against the verifier (issue 12): a flood of signature
 * packets is refused before any is checked, the data is hashed once for all
 * signatures, the deadline stops a long run of checks, and a From that is
 * not exactly one mailbox never passes.
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
import { readKeyBlob, ringFor, type KeyRing } from '../../../../core/keys/material'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime, type Runtime } from '../../../../core/runtime'
import { verifyMessage } from '../../../../core/verify'
import { checkSignatures, MAX_SIGNATURES, parseSignatureBlock } from '../../../../core/verify/check'
import { nativeKeyFromPacket } from '../../../../core/keys/native-key'
import { SignedDataHashes, verifyNative } from '../../../../core/verify/native'
import { dearmor, readSignatures, type SignaturePacket } from '../../../../core/verify/packets'
import { assembleSigned, textPart } from '../../../helpers/signers'

let dir: string
let key: openpgp.PrivateKey
let ring: KeyRing

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-hostile-'))
  key = (
    await openpgp.generateKey({ userIDs: [{ name: 'Alice', email: 'alice@example.org' }], format: 'object' })
  ).privateKey
  await keyStoreFor(runtime()).add(Buffer.from(key.toPublic().write()))
  ring = ringFor('alice@example.org', await readKeyBlob(Buffer.from(key.toPublic().write())))
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

function runtime(verify: Record<string, string | number | boolean> = {}): Runtime {
  const cfg = parseConfig({ main: { authserv_id: 'mx.test' }, keys: { methods: 'local' }, verify }, dir)
  return createRuntime(cfg, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
}

const optional = async () => 'optional' as const

async function binarySig(data: Buffer): Promise<Buffer> {
  const message = await openpgp.createMessage({ binary: new Uint8Array(data) })
  return dearmor((await openpgp.sign({ message, signingKeys: key, detached: true })) as string)
}

function armor(binary: Buffer): string {
  const b64 = binary.toString('base64').replace(/.{1,64}/g, '$&\n')
  return `-----BEGIN PGP SIGNATURE-----\n\n${b64}-----END PGP SIGNATURE-----\n`
}

/** A signature made by the sender's real key over other data: invalid here, but it names the key. */
async function foreignSig(): Promise<Buffer> {
  return binarySig(Buffer.from('something else entirely\r\n'))
}

test('a flood of signature packets naming the sender key is permerror before any key lookup', async () => {
  const inner = textPart('x'.repeat(100_000) + '\n')
  const one = await foreignSig()
  for (const copies of [MAX_SIGNATURES + 1, 5000]) {
    let lookups = 0
    const finder: KeyFinder = {
      store: undefined as never,
      find: async () => (lookups++, { kind: 'notfound', reason: 'x' }),
    }
    const msg = assembleSigned(
      { from: 'alice@example.org' },
      inner,
      armor(Buffer.concat(Array(copies).fill(one))),
    )
    const d = await verifyMessage(runtime(), msg, { finder, signaturePolicy: optional })
    assert.equal(d.result, 'permerror', `${copies} copies`)
    assert.match(d.facts.reason, new RegExp(`more than ${MAX_SIGNATURES} signatures`))
    assert.equal(lookups, 0)
  }
})

test('up to the cap every signature is checked: bad copies around one good signature still pass', async () => {
  const inner = textPart('hello\n')
  const bad = await foreignSig()
  const good = await binarySig(inner)
  const block = Buffer.concat([...Array(MAX_SIGNATURES - 1).fill(bad), good])
  const sigs = parseSignatureBlock(block)
  assert.ok(Array.isArray(sigs) && sigs.length === MAX_SIGNATURES)
  assert.equal((await checkSignatures(inner, sigs, ring, Date.now())).result, 'pass')
  const allBad = parseSignatureBlock(Buffer.concat(Array(MAX_SIGNATURES).fill(bad))) as SignaturePacket[]
  const c = await checkSignatures(inner, allBad, ring, Date.now())
  assert.equal(c.result, 'fail')
  assert.match(c.reason, /does not match/)
})

test('the signed data is hashed once per algorithm for all signatures, with the same outcomes', async () => {
  const data = textPart('shared\n')
  const good = readSignatures(await binarySig(data))[0]!
  const bad = readSignatures(await foreignSig())[0]!
  const signing = await key.getSigningKey()
  const native = nativeKeyFromPacket(signing.keyPacket.write())!
  const hashes = new SignedDataHashes(data)
  const sigs = [bad, good, bad, bad, good, bad, bad, good]
  const shared = sigs.map((s) => verifyNative(s, hashes, native))
  const alone = sigs.map((s) => verifyNative(s, data, native))
  assert.deepEqual(shared, alone)
  assert.deepEqual(shared, ['invalid', 'valid', 'invalid', 'invalid', 'valid', 'invalid', 'invalid', 'valid'])
  assert.equal(hashes.passes, 1)
})

test('one signature over a small part is hashed in one call, to the same digest as the shared state', async () => {
  for (const data of [textPart('one\n'), textPart(`${'x'.repeat(70)}\n`.repeat(2000))]) {
    const sig = readSignatures(await binarySig(data))[0]!
    const one = new SignedDataHashes(data, 1)
    const shared = new SignedDataHashes(data)
    assert.deepEqual(one.digest(sig), shared.digest(sig))
    assert.equal(one.passes, 1)
    const native = nativeKeyFromPacket((await key.getSigningKey()).keyPacket.write())!
    assert.equal(verifyNative(sig, data, native), 'valid')
  }
})

test('the deadline and the abort signal stop a run of signature checks (temperror, never a pass)', async () => {
  const inner = textPart('late\n')
  const sigs = readSignatures(Buffer.concat([await foreignSig(), await binarySig(inner)]))
  await assert.rejects(
    checkSignatures(inner, sigs, ring, Date.now(), { deadlineAt: Date.now() - 1 }),
    /deadline_ms/,
  )
  const aborted = new AbortController()
  aborted.abort()
  await assert.rejects(
    checkSignatures(inner, sigs, ring, Date.now(), { signal: aborted.signal }),
    /deadline_ms/,
  )
  // One signature needs no pause: nothing to interrupt.
  assert.equal(
    (await checkSignatures(inner, sigs.slice(1), ring, Date.now(), { deadlineAt: Date.now() - 1 })).result,
    'pass',
  )
})

test('a From that is not exactly one mailbox never passes, whoever signed', async () => {
  const inner = textPart('hi\n')
  const sig = armor(await binarySig(inner))
  const froms = [
    '<eve@attacker.test> <alice@example.org>',
    '<alice@example.org> <alice@example.org>',
    'alice@example.org <alice@example.org>',
    'Eve <eve@attacker.test>, <alice@example.org>',
    'friends: <alice@example.org>;',
    '<eve@attacker.test>alice@example.org',
    'Alice <alice@example.org> (x) eve@attacker.test',
    '(unclosed <alice@example.org>',
    '"unclosed <alice@example.org>',
    'Alice\x1b[2J <alice@example.org>',
    '<alice@example.org',
  ]
  for (const from of froms) {
    const d = await verifyMessage(runtime(), assembleSigned({ from }, inner, sig), {
      signaturePolicy: optional,
    })
    assert.equal(d.result, 'permerror', from)
    assert.match(d.facts.reason, /exactly one/, from)
  }
  const twoFields = assembleSigned(
    { from: 'alice@example.org', extra: ['From: alice@example.org'] },
    inner,
    sig,
  )
  assert.equal((await verifyMessage(runtime(), twoFields, { signaturePolicy: optional })).result, 'permerror')
  // The control: the same signature under one mailbox passes.
  const ok = await verifyMessage(
    runtime(),
    assembleSigned({ from: 'Alice <alice@example.org>' }, inner, sig),
    {
      signaturePolicy: optional,
    },
  )
  assert.equal(ok.result, 'pass')
})

test('a 60 KB protected From is quoted capped and clean in the reason, the header and the reply', async () => {
  const inner = Buffer.from(
    `Content-Type: text/plain; charset=utf-8; protected-headers="v1"\r\nFrom: ${'\x1b\x07'.repeat(10)}${'x'.repeat(60_000)} <eve@attacker.test>\r\n\r\nhi\r\n`,
  )
  const msg = assembleSigned({ from: 'alice@example.org' }, inner, armor(await binarySig(inner)))
  const d = await verifyMessage(runtime({ on_fail: 'reject' }), msg, { signaturePolicy: optional })
  assert.equal(d.result, 'fail')
  assert.ok(d.facts.reason.length < 400, `${d.facts.reason.length}`)
  assert.doesNotMatch(d.verdict.text!, /[\x00-\x1f\x7f]/)
  const ar = d.headers.find((h) => h.op === 'prepend')!
  assert.ok(ar.op === 'prepend' && ar.value.length < 700 && !/[\x00-\x1f\x7f]/.test(ar.value), ar.op)
})

test('a UTF-8 From is read as UTF-8: the key for jörg is found and the header names jörg once encoded', async () => {
  const { privateKey: jk } = await openpgp.generateKey({
    userIDs: [{ name: 'Jörg', email: 'jörg@example.org' }],
    format: 'object',
  })
  await keyStoreFor(runtime()).add(Buffer.from(jk.toPublic().write()))
  const inner = textPart('grüße\n')
  const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message, signingKeys: jk, detached: true })) as string
  const msg = assembleSigned({ from: 'Jörg <jörg@example.org>' }, inner, sig)
  assert.ok(msg.includes(Buffer.from('jörg', 'utf8')), 'the message carries UTF-8 bytes')
  const d = await verifyMessage(runtime(), msg, { signaturePolicy: optional })
  assert.equal(d.result, 'pass', d.facts.reason)
  assert.equal(d.facts.from, 'jörg@example.org')
  const ar = d.headers.find((h) => h.op === 'prepend')!
  assert.ok(ar.op === 'prepend')
  const bytes = Buffer.from(ar.value, 'utf8')
  assert.ok(bytes.includes(Buffer.from('header.from="jörg@example.org"', 'utf8')), ar.value)
  assert.ok(!bytes.includes(Buffer.from([0xc3, 0x83])), 'not double-encoded')
})
