/** Who is signed, the senders file, and what a failure gets under sig=required. */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, test } from 'node:test'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../../../core/config'
import { parseAddress } from '../../../../core/keys'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime, type Runtime } from '../../../../core/runtime'
import { keyStoreFor } from '../../../../core/keys'
import { signMessage, signingKeyFrom } from '../../../../core/sign'
import { applySigned } from '../../../../core/sign/apply'
import { notSigningAll } from '../../../../core/sign/readiness'
import { parseSenders } from '../../../../core/sign/senders'
import { secretStoreFor, signStep } from '../../../../core/sign/step'
import { trustedNetworks, whoSigns, type SignerScope } from '../../../../core/sign/who'

const scope = (senders = ''): SignerScope => ({
  domains: new Set(['example.org']),
  trusted: trustedNetworks(['192.0.2.0/24', '::1']),
  senders: parseSenders(senders),
})

describe('whoSigns', () => {
  const cases: [string, Parameters<typeof whoSigns>[0], string][] = [
    ['the login itself', { from: ['Alice <alice@example.org>'], login: 'alice@example.org' }, 'login'],
    ['a plain user name for its local part', { from: ['alice@example.org'], login: 'Alice' }, 'login'],
    ['listed in senders_file', { from: ['sales@example.org'], login: 'alice@example.org' }, 'senders_file'],
    ['a @domain wildcard', { from: ['any@example.org'], login: 'webapp' }, 'senders_file'],
    ['a trusted network', { from: ['bob@example.org'], clientAddress: '192.0.2.9' }, 'trusted_network'],
    ['a trusted IPv6 host', { from: ['bob@example.org'], clientAddress: '::1' }, 'trusted_network'],
    ['another domain', { from: ['eve@example.net'], login: 'eve@example.net' }, 'not_ours'],
    [
      'a subdomain is not the domain',
      { from: ['eve@sub.example.org'], login: 'eve@sub.example.org' },
      'not_ours',
    ],
    ['another login', { from: ['bob@example.org'], login: 'alice@example.org' }, 'not_allowed'],
    [
      'unauthenticated, untrusted',
      { from: ['bob@example.org'], clientAddress: '198.51.100.1' },
      'not_allowed',
    ],
    [
      'two From addresses',
      { from: ['alice@example.org, bob@example.org'], login: 'alice@example.org' },
      'not_allowed',
    ],
    [
      'two From fields',
      { from: ['alice@example.org', 'bob@example.org'], login: 'alice@example.org' },
      'not_allowed',
    ],
  ]
  const s = scope('alice@example.org sales@example.org\nwebapp @example.org # the shop\n')
  for (const [name, facts, want] of cases)
    test(name, () => {
      const d = whoSigns(facts, s)
      assert.equal(d.sign ? d.via : d.outcome, want, d.sign ? '' : d.reason)
    })

  test('senders_file: a line without addresses names its line', () => {
    assert.throws(() => parseSenders('alice@example.org\n'), /line 1: write a login/)
    assert.throws(() => parseSenders('a b c\n'), /line 1: "b" is not an address/)
    assert.deepEqual(parseSenders('a@x.org b@x.org @x.org\n').addresses(), ['a@x.org', 'b@x.org'])
  })

  test('trusted_networks refuses a bad prefix', () => {
    assert.throws(() => trustedNetworks(['10.0.0.0/33']), /prefix must be 0-32/)
  })
})

describe('signStep failures', () => {
  let dir: string
  const rtFor = (sign: Record<string, string>) =>
    createRuntime(parseConfig({ main: { domain: 'example.org' }, sign: { enabled: 'true', ...sign } }, dir), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
  const msg = (from: string) => Buffer.from(`From: ${from}\r\nSubject: x\r\n\r\nhi\r\n`)
  const required = Object.assign(async () => 'required' as const, {})
  const optional = async () => 'optional' as const
  const unknown = async () => 'unknown' as const
  let rt: Runtime

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-signstep-'))
    rt = rtFor({})
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: [{ email: 'alice@example.org' }],
      subkeys: [],
      format: 'object',
    })
    await secretStoreFor(rt).save(Buffer.from(privateKey.write()))
  })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  const count = async (r: Runtime, outcome: string) =>
    (await r.metrics.signedMessages.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0

  test('signed: edits and a body, counted', async () => {
    const d = await signStep(rt, msg('alice@example.org'), { login: 'alice@example.org' })
    assert.equal(d.outcome, 'signed')
    assert.ok(d.body && d.headers.some((h) => h.op === 'append' && h.name === 'Content-Type'))
    assert.equal(await count(rt, 'signed'), 1)
  })

  test('no key: unsigned when optional, 451 4.7.0 when required or unknown', async () => {
    const from = msg('bob@example.org')
    const facts = { login: 'bob@example.org' }
    assert.equal((await signStep(rt, from, facts, { signaturePolicy: optional })).verdict.action, 'continue')
    for (const p of [required, unknown]) {
      const d = await signStep(rt, from, facts, { signaturePolicy: p })
      assert.equal(d.outcome, 'no_key')
      assert.deepEqual([d.verdict.code, d.verdict.enhanced], [451, '4.7.0'])
      assert.match(d.verdict.text!, /no secret key for bob@example\.org.*requires signed mail/)
    }
    assert.equal(await count(rt, 'no_key'), 3)
  })

  test('a From the login may not use: 550 5.7.1 when required; unauthenticated mail is left to verify', async () => {
    const d = await signStep(
      rt,
      msg('carol@example.org'),
      { login: 'alice@example.org' },
      { signaturePolicy: required },
    )
    assert.deepEqual([d.outcome, d.verdict.code, d.verdict.enhanced], ['not_allowed', 550, '5.7.1'])
    assert.match(d.verdict.text!, /alice@example\.org may not send as carol@example\.org/)
    const inbound = await signStep(
      rt,
      msg('carol@example.org'),
      { clientAddress: '198.51.100.7' },
      { signaturePolicy: required },
    )
    assert.deepEqual([inbound.outcome, inbound.verdict.action], ['not_allowed', 'continue'])
  })

  test('too large to sign: 550 5.7.1 when required, unsigned otherwise', async () => {
    const small = rtFor({ max_message_bytes: '1024' })
    const big = Buffer.concat([msg('alice@example.org'), Buffer.alloc(2000, 0x61)])
    const d = await signStep(small, big, { login: 'alice@example.org' }, { signaturePolicy: required })
    assert.deepEqual([d.outcome, d.verdict.code], ['error', 550])
    assert.equal(
      (await signStep(small, big, { login: 'alice@example.org' }, { signaturePolicy: optional })).verdict
        .action,
      'continue',
    )
  })

  test('broken MIME that needs re-encoding: 550 5.7.1 when required, unsigned and counted otherwise', async () => {
    const broken = Buffer.from(
      'From: alice@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n' +
        '--x\r\nContent-Type: text/plain\r\n\r\nGr\xfc\xdfe\r\n',
      'latin1',
    )
    const facts = { login: 'alice@example.org' }
    const before = await count(rt, 'error')
    const d = await signStep(rt, broken, facts, { signaturePolicy: required })
    assert.deepEqual([d.outcome, d.verdict.code, d.verdict.enhanced], ['error', 550, '5.7.1'])
    assert.match(d.verdict.text!, /broken MIME.*requires signed mail/)
    const o = await signStep(rt, broken, facts, { signaturePolicy: optional })
    assert.deepEqual([o.outcome, o.verdict.action, o.body], ['error', 'continue', undefined])
    assert.equal(await count(rt, 'error'), before + 2)
  })

  test('a key file that cannot be used (not a key, readable by others): 451 4.7.0 naming the file and why', async () => {
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-signstep-bad-'))
    try {
      const r = createRuntime(
        parseConfig(
          { main: { domain: 'example.org' }, sign: { enabled: 'true', secret_dir: 'secret' } },
          own,
        ),
        { log: silentLogger, metrics: createMetrics({ processMetrics: false }) },
      )
      const secret = path.join(own, 'secret')
      fs.mkdirSync(secret, { mode: 0o700 })
      fs.writeFileSync(path.join(secret, 'dave@example.org.key'), 'not a key', { mode: 0o600 })
      const facts = { login: 'dave@example.org' }
      const d = await signStep(r, msg('dave@example.org'), facts, { signaturePolicy: required })
      assert.deepEqual([d.outcome, d.verdict.code, d.verdict.enhanced], ['no_key', 451, '4.7.0'])
      assert.match(
        d.verdict.text!,
        /secret key file .*dave@example\.org\.key was refused: .*not an OpenPGP secret key/,
      )
      // A good key made readable by others after start: refused at the next load, with the fix.
      const { privateKey } = await openpgp.generateKey({
        type: 'ecc',
        curve: 'ed25519Legacy',
        userIDs: [{ email: 'dave@example.org' }],
        format: 'object',
      })
      fs.writeFileSync(path.join(secret, 'dave@example.org.key'), privateKey.write(), { mode: 0o600 })
      fs.chmodSync(path.join(secret, 'dave@example.org.key'), 0o644)
      fs.utimesSync(secret, new Date(), new Date(Date.now() + 5000))
      // The store looks at the directory at most once a second (core/sign/secrets.ts).
      await new Promise((r) => setTimeout(r, 1100))
      const e = await signStep(r, msg('dave@example.org'), facts, { signaturePolicy: required })
      assert.deepEqual([e.outcome, e.verdict.code], ['no_key', 451])
      assert.match(e.verdict.text!, /readable by other users .*chmod 600/)
    } finally {
      fs.rmSync(own, { recursive: true, force: true })
    }
  })

  test('verified by the verify step: already signed, left alone', async () => {
    const d = await signStep(rt, msg('alice@example.org'), { login: 'alice@example.org', verified: true })
    assert.equal(d.outcome, 'already_signed')
    assert.equal(d.body, undefined)
  })

  test("signed by the user's own published key: left alone though no secret key is held", async () => {
    const { privateKey, publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: [{ email: 'dora@example.org' }],
      format: 'object',
    })
    await keyStoreFor(rt).add(Buffer.from(publicKey.write()))
    const own = await signingKeyFrom(privateKey, 'dora@example.org')
    const plain = msg('dora@example.org')
    const signed = applySigned(plain, signMessage(plain, own) as never)
    const d = await signStep(rt, signed, { login: 'dora@example.org' }, { signaturePolicy: required })
    assert.deepEqual([d.outcome, d.verdict.action], ['already_signed', 'continue'])
    const unsigned = await signStep(rt, plain, { login: 'dora@example.org' }, { signaturePolicy: required })
    assert.deepEqual([unsigned.outcome, unsigned.verdict.code], ['no_key', 451])
  })

  test('another domain passes unsigned, counted not_ours', async () => {
    const d = await signStep(
      rt,
      msg('x@example.net'),
      { login: 'x@example.net' },
      { signaturePolicy: required },
    )
    assert.deepEqual([d.outcome, d.verdict.action], ['not_ours', 'continue'])
  })
})

describe('notSigningAll (record --sig=required)', () => {
  const cfg = (sign: Record<string, string>) => parseConfig({ main: { domain: 'example.org' }, sign }, '/x')
  const keys = {
    published: ['alice@example.org', 'bob@example.org'],
    secrets: [{ address: 'alice@example.org' }],
    allowed: [],
  }
  test('signing off, another domain, a sender without a key, a key that cannot sign', () => {
    assert.match(notSigningAll(cfg({}), 'example.org', keys)[0]!, /signing is off/)
    assert.match(notSigningAll(cfg({ enabled: 'true' }), 'example.net', keys)[0]!, /not signed for/)
    assert.match(
      notSigningAll(cfg({ enabled: 'true' }), 'example.org', keys).join(),
      /no secret key for bob@example\.org/,
    )
    const expired = {
      published: [],
      secrets: [{ address: 'alice@example.org', problem: 'expired' }],
      allowed: [],
    }
    assert.equal(notSigningAll(cfg({ enabled: 'true' }), 'example.org', expired).length, 2)
    assert.deepEqual(
      notSigningAll(cfg({ enabled: 'true' }), 'example.org', { ...keys, published: ['alice@example.org'] }),
      [],
    )
  })
  test('parseAddress sanity for the domain filter', () =>
    assert.equal(parseAddress('a@Example.org')?.domain, 'example.org'))
})
