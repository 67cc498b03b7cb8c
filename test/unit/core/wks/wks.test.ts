/**
 * The Web Key Service's decisions (core/wks) in-process: a submission gets a
 * confirmation request only the submitted key can read (its nonce, address
 * and fingerprint inside); the right answer publishes; and each bad input is
 * refused with its reason and counted, publishing nothing: a foreign domain,
 * a key without the From address, a forged or replayed confirmation, a
 * confirmation for someone else, an undecryptable message, a flood for one
 * address (per_address) and a full pending store (pending_max). A confirmed
 * key for an address that already has one is published as a rotation.
 * The real client (gpg-wks-client through Postfix) is in
 * test/integration/wks-postfix.test.ts.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../../../core/config'
import { keyStoreFor } from '../../../../core/keys'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime, type Runtime } from '../../../../core/runtime'
import { secretStoreFor } from '../../../../core/sign/step'
import { receiveWks, type WksResult } from '../../../../core/wks'
import { nameValues } from '../../../../core/wks/mail'

const SA = 'key-submission@wks.test'
let dir: string
let rt: Runtime
let subPub: openpgp.PublicKey
const keys: Record<string, openpgp.PrivateKey> = {}

async function gen(email: string): Promise<openpgp.PrivateKey> {
  return (
    await openpgp.generateKey({ userIDs: [{ email }], format: 'object', date: new Date(Date.now() - 60_000) })
  ).privateKey
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-wks-'))
  const config = parseConfig(
    { main: { domain: 'wks.test' }, wks: { enabled: 'true', per_address: '2', pending_max: '3' } },
    dir,
  )
  rt = createRuntime(config, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
  const sub = await gen(SA)
  subPub = sub.toPublic()
  await secretStoreFor(rt).save(Buffer.from(sub.write()), SA)
  await keyStoreFor(rt).add(Buffer.from(subPub.write()), SA)
  for (const a of ['ann@wks.test', 'ann@other.test', 'carl@wks.test', 'dave@wks.test']) keys[a] = await gen(a)
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

const message = (from: string, headers: string, body: string) =>
  Buffer.from(`From: ${from}\r\nTo: ${SA}\r\nSubject: x\r\nMIME-Version: 1.0\r\n${headers}\r\n\r\n${body}`)

const submission = (from: string, key: openpgp.PrivateKey) =>
  message(from, 'Content-Type: application/pgp-keys', key.toPublic().armor())

const answer = (from: string, fields: Record<string, string>) =>
  message(
    from,
    'Content-Type: application/vnd.gnupg.wks',
    Object.entries(fields)
      .map(([k, v]) => `${k}: ${v}\n`)
      .join(''),
  )

/** Decrypts the request in a confirmation_sent reply with the submitted key. */
async function requestFields(r: WksResult, key: openpgp.PrivateKey): Promise<Map<string, string>> {
  assert.equal(r.outcome, 'confirmation_sent', 'reason' in r ? r.reason : '')
  const raw = r.reply.raw.toString('latin1')
  assert.match(raw, /^WKS-Phase: confirm\r$/m)
  assert.match(
    raw,
    /^Content-Type: multipart\/signed; micalg=pgp-sha256; protocol="application\/pgp-signature"/m,
  )
  const armored = /-----BEGIN PGP MESSAGE-----[\s\S]*?-----END PGP MESSAGE-----/.exec(raw)![0]
  const m = await openpgp.readMessage({ armoredMessage: armored })
  const out = await openpgp.decrypt({ message: m, decryptionKeys: key, format: 'binary' })
  return nameValues(Buffer.from(out.data))
}

const count = async (outcome: string) =>
  (await rt.metrics.wksSubmissions.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0

test('submission -> request readable only by the submitted key -> answer publishes; a replay is refused', async () => {
  const ann = keys['ann@wks.test']!
  const sent = await receiveWks(rt, submission('Ann <ann@wks.test>', ann), SA)
  const req = await requestFields(sent, ann)
  assert.equal(req.get('type'), 'confirmation-request')
  assert.equal(req.get('sender'), SA)
  assert.equal(req.get('address'), 'ann@wks.test')
  assert.equal(req.get('fingerprint'), ann.getFingerprint().toUpperCase())
  await assert.rejects(
    openpgp.decrypt({
      message: await openpgp.readMessage({
        armoredMessage: /-----BEGIN PGP MESSAGE-----[\s\S]*?-----END PGP MESSAGE-----/.exec(
          (sent as Extract<WksResult, { reply: unknown }>).reply.raw.toString('latin1'),
        )![0],
      }),
      decryptionKeys: keys['carl@wks.test']!,
    }),
  )
  assert.equal(await keyStoreFor(rt).lookup('ann@wks.test'), undefined)
  // Someone else's answer with ann's nonce: refused, and the nonce is spent.
  const nonce = req.get('nonce')!
  const fields = { type: 'confirmation-response', sender: SA, address: 'ann@wks.test', nonce }
  const wrong = await receiveWks(rt, answer('carl@wks.test', fields), SA)
  assert.equal(wrong.outcome, 'mismatch')
  assert.equal(await keyStoreFor(rt).lookup('ann@wks.test'), undefined)
  // A fresh submission, answered properly.
  const again = await requestFields(await receiveWks(rt, submission('ann@wks.test', ann), SA), ann)
  const ok = { ...fields, nonce: again.get('nonce')! }
  const published = await receiveWks(rt, answer('ann@wks.test', ok), SA)
  assert.equal(published.outcome, 'published', 'reason' in published ? published.reason : '')
  const ring = await keyStoreFor(rt).lookup('ann@wks.test')
  assert.deepEqual(
    ring?.keys.map((k) => k.getFingerprint()),
    [ann.getFingerprint()],
  )
  const replay = await receiveWks(rt, answer('ann@wks.test', ok), SA)
  assert.equal(replay.outcome, 'unknown_nonce')
  assert.match((replay as { reason: string }).reason, /no submission waits for this nonce/)
  assert.equal(await count('published'), 1)
})

test('bad input is refused with a reason, counted, and publishes nothing', async () => {
  const cases: [string, Buffer, string, RegExp][] = [
    [
      'foreign domain',
      submission('ann@other.test', keys['ann@other.test']!),
      'foreign_domain',
      /other\.test is not a domain this server publishes keys for/,
    ],
    [
      'key without the From address',
      submission('carl@wks.test', keys['ann@wks.test']!),
      'no_address',
      /no user ID for carl@wks\.test/,
    ],
    [
      'forged confirmation',
      answer('dave@wks.test', {
        type: 'confirmation-response',
        sender: SA,
        address: 'dave@wks.test',
        nonce: 'ybndrfg8ejkmcpqxot1uwisza345h769',
      }),
      'unknown_nonce',
      /no submission waits/,
    ],
    [
      'not a WKS message',
      message('dave@wks.test', 'Content-Type: text/plain', 'please publish my key\r\n'),
      'bad_message',
      /a text\/plain part/,
    ],
    [
      'encrypted to another key',
      message(
        'dave@wks.test',
        'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"',
        `--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n${
          (await openpgp.encrypt({
            message: await openpgp.createMessage({ text: 'Content-Type: application/pgp-keys\n\nx' }),
            encryptionKeys: keys['dave@wks.test']!.toPublic(),
          })) as string
        }\r\n--b--\r\n`,
      ),
      'bad_message',
      /cannot be decrypted with the submission key/,
    ],
  ]
  for (const [what, raw, outcome, reason] of cases) {
    const before = await count(outcome)
    const r = await receiveWks(rt, raw, SA)
    assert.equal(r.outcome, outcome, what)
    assert.match((r as { reason: string }).reason, reason, what)
    assert.equal(await count(outcome), before + 1, what)
  }
  for (const a of ['ann@other.test', 'carl@wks.test', 'dave@wks.test'])
    assert.equal(await keyStoreFor(rt).lookup(a), undefined, a)
  const wrongTo = await receiveWks(rt, submission('dave@wks.test', keys['dave@wks.test']!), 'dave@wks.test')
  assert.equal(wrongTo.outcome, 'not_submission_address')
})

test('a flood is bounded: per_address per address, pending_max in all; the refused get no request', async () => {
  // Nothing is pending after the first test (its nonces were spent); per_address = 2, pending_max = 3.
  const dave = keys['dave@wks.test']!
  const first = await receiveWks(rt, submission('dave@wks.test', dave), SA)
  assert.equal(first.outcome, 'confirmation_sent')
  assert.equal((await receiveWks(rt, submission('dave@wks.test', dave), SA)).outcome, 'confirmation_sent')
  const third = await receiveWks(rt, submission('dave@wks.test', dave), SA)
  assert.equal(third.outcome, 'rate_limited')
  assert.match((third as { reason: string }).reason, /dave@wks\.test already has 2 submissions waiting/)
  assert.equal(
    (await receiveWks(rt, submission('carl@wks.test', keys['carl@wks.test']!), SA)).outcome,
    'confirmation_sent',
  )
  const full = await receiveWks(rt, submission('ann@wks.test', keys['ann@wks.test']!), SA)
  assert.equal(full.outcome, 'pending_full')
  assert.ok(!('reply' in full))
  assert.equal(await count('rate_limited'), 1)
  assert.equal(await count('pending_full'), 1)
})

test('a confirmed new key for an address that has one is a rotation: both published, the old one retiring', async () => {
  // carl: one key published by WKS, then a second one confirmed.
  const first = keys['carl@wks.test']!
  const second = await gen('carl@wks.test')
  for (const k of [first, second]) {
    // The flood test left submissions pending; make room for carl's.
    fs.rmSync(path.join(dir, 'wks-pending'), { recursive: true, force: true })
    const req = await requestFields(await receiveWks(rt, submission('carl@wks.test', k), SA), k)
    const fields = {
      type: 'confirmation-response',
      sender: SA,
      address: 'carl@wks.test',
      nonce: req.get('nonce')!,
    }
    assert.equal((await receiveWks(rt, answer('carl@wks.test', fields), SA)).outcome, 'published')
  }
  const stored = (await keyStoreFor(rt).list()).find((k) => k.address === 'carl@wks.test')!
  assert.deepEqual(
    stored.ring.keys.map((k) => k.getFingerprint()).sort(),
    [first.getFingerprint(), second.getFingerprint()].sort(),
  )
  const leaves = stored.retiring?.get(first.getFingerprint().toUpperCase())
  assert.ok(
    leaves !== undefined && leaves > Date.now() + 6 * 24 * 3600 * 1000,
    'the old key retires after the overlap',
  )
})
