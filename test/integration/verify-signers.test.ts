/**
 * Messages made by real GnuPG and real Sequoia (sq), checked by
 * verifyMessage with the keys in a local store: Ed25519 and RSA, signing
 * subkeys, quoted-printable, attachments, sign-after-encrypt, inline,
 * protected headers, and the negative cases (altered body, another key,
 * expired and revoked keys and subkeys, protected From mismatch,
 * truncated signature, broken MIME).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { parseConfig } from '../../core/config'
import { keyStoreFor } from '../../core/keys'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime, type Runtime } from '../../core/runtime'
import { verifyMessage, type VerifyDecision } from '../../core/verify'
import * as S from '../helpers/signers'

let kit: S.SignerKit
let rt: Runtime
const signers: Record<string, S.TestSigner> = {}
const optional = async () => 'optional' as const

async function check(msg: Buffer): Promise<VerifyDecision> {
  return verifyMessage(rt, msg, { signaturePolicy: optional })
}

const env = (s: S.TestSigner, from = `Test <${s.address}>`): S.Envelope => ({ from })
const latin = (b: Buffer) => b.toString('latin1')
const edit = (b: Buffer, f: (s: string) => string) => Buffer.from(f(latin(b)), 'latin1')

describe('signed mail from real GnuPG and Sequoia', { skip: S.missingSigners() }, () => {
  before(async () => {
    kit = new S.SignerKit()
    const dir = kit.scratch('config')
    rt = createRuntime(parseConfig({ main: { authserv_id: 'mx.test' }, keys: { methods: 'local' } }, dir), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    const specs: Record<string, () => S.TestSigner> = {
      gpgEd: () => kit.gpg({ address: 'ed@example.org' }),
      gpgRsa: () => kit.gpg({ address: 'rsa@example.org', algo: 'rsa2048' }),
      gpgSub: () => kit.gpg({ address: 'sub@example.org', subkey: true }),
      gpgExpired: () => kit.gpg({ address: 'expired@example.org', expired: true }),
      gpgExpiredSub: () => kit.gpg({ address: 'expiredsub@example.org', subkey: true, expired: true }),
      gpgRevoked: () => kit.gpg({ address: 'revoked@example.org' }),
      sqEd: () => kit.sq({ address: 'carol@example.org' }),
      sqRsa: () => kit.sq({ address: 'sqrsa@example.org', suite: 'rsa3k' }),
      sqRevokedSub: () => kit.sq({ address: 'revokedsub@example.org' }),
      sqExpired: () => kit.sq({ address: 'sqexpired@example.org', expired: true }),
      mallory: () => kit.gpg({ address: 'mallory@example.org' }),
    }
    for (const [k, make] of Object.entries(specs)) signers[k] = make()
    signers.gpgRevoked!.revoke()
    signers.sqRevokedSub!.revokeSigningSubkey()
    const store = keyStoreFor(rt)
    for (const [k, s] of Object.entries(signers)) if (k !== 'mallory') await store.add(s.publicKey())
  })
  after(() => kit?.cleanup())

  const goodCases: [string, string, (s: S.TestSigner) => Buffer][] = [
    [
      'gpgEd',
      'quoted-printable text',
      (s) => S.pgpMimeMessage(s, env(s), S.textPart('Grüße, Welt = 1\nline two  \n', { qp: true })),
    ],
    ['gpgRsa', 'RSA, text part', (s) => S.pgpMimeMessage(s, env(s), S.textPart('hello\n'))],
    ['gpgSub', 'signing subkey', (s) => S.pgpMimeMessage(s, env(s), S.textPart('hello\n'))],
    [
      'gpgEd',
      'canonical-text signature (0x01)',
      (s) => S.pgpMimeMessage(s, env(s), S.textPart('a\nb\n'), { text: true }),
    ],
    [
      'gpgEd',
      'multipart/mixed with attachment',
      (s) => S.pgpMimeMessage(s, env(s), S.mixedWithAttachment('see file\n', Buffer.alloc(5000, 0xa5))),
    ],
    [
      'sqEd',
      'Sequoia Ed25519 subkey',
      (s) => S.pgpMimeMessage(s, env(s), S.textPart('hi from sq\n', { qp: true })),
    ],
    ['sqRsa', 'Sequoia RSA subkey', (s) => S.pgpMimeMessage(s, env(s), S.textPart('hi\n'))],
    [
      'sqEd',
      'sign-after-encrypt',
      (s) => S.pgpMimeMessage(s, env(s), S.encryptedPart(kit.encrypt(Buffer.from('secret')))),
    ],
    [
      'gpgEd',
      'protected headers hp="clear"',
      (s) => S.pgpMimeMessage(s, env(s), S.protectedTextPart('hi\n', s.address)),
    ],
    [
      'sqEd',
      'protected headers v1',
      (s) => S.pgpMimeMessage(s, env(s), S.protectedTextPart('hi\n', s.address, 'v1')),
    ],
    [
      'gpgEd',
      'inline cleartext (dash-escaped, trailing blanks)',
      (s) => S.inlineMessage(s, env(s), 'Hello\n- dashed\n-- \nsig  \n'),
    ],
    [
      'sqEd',
      'inline cleartext, quoted-printable',
      (s) => S.inlineMessage(s, env(s), 'Grüße\nend\n', { qp: true }),
    ],
    [
      'gpgEd',
      'LF line ends (a file)',
      (s) => edit(S.pgpMimeMessage(s, env(s), S.textPart('lf\n')), (x) => x.replace(/\r\n/g, '\n')),
    ],
  ]
  for (const [who, what, make] of goodCases) {
    test(`pass: ${who} ${what}`, async (t) => {
      if (!signers[who]) return t.skip('no signers')
      const s = signers[who]
      const d = await check(make(s))
      assert.equal(d.result, 'pass', d.facts.reason)
      assert.equal(d.facts.fingerprint, s.fingerprint)
      assert.equal(d.verdict.action, 'continue')
    })
  }

  const badCases: [string, string, RegExp, (s: S.TestSigner) => Buffer][] = [
    [
      'gpgEd',
      'body altered',
      /does not match/,
      (s) => edit(S.pgpMimeMessage(s, env(s), S.textPart('pay 10\n')), (x) => x.replace('pay 10', 'pay 90')),
    ],
    [
      'sqEd',
      'attachment altered',
      /does not match/,
      (s) =>
        edit(S.pgpMimeMessage(s, env(s), S.mixedWithAttachment('f\n', Buffer.alloc(900, 1))), (x) =>
          x.replace('AQEB', 'AQEC'),
        ),
    ],
    [
      'gpgEd',
      'signed by another key',
      /not the sender's key/,
      (s) => S.pgpMimeMessage(signers.mallory!, env(s), S.textPart('hello\n')),
    ],
    ['gpgExpired', 'expired key', /expired/, (s) => S.pgpMimeMessage(s, env(s), S.textPart('x\n'))],
    [
      'gpgExpiredSub',
      'expired signing subkey',
      /subkey has expired/,
      (s) => S.pgpMimeMessage(s, env(s), S.textPart('x\n')),
    ],
    ['sqExpired', 'expired Sequoia key', /expired/, (s) => S.pgpMimeMessage(s, env(s), S.textPart('x\n'))],
    ['gpgRevoked', 'revoked key', /revoked/, (s) => S.pgpMimeMessage(s, env(s), S.textPart('x\n'))],
    [
      'sqRevokedSub',
      'revoked signing subkey',
      /subkey is revoked/,
      (s) => S.pgpMimeMessage(s, env(s), S.textPart('x\n')),
    ],
    [
      'gpgEd',
      'protected From differs',
      /protected/,
      (s) => S.pgpMimeMessage(s, env(s), S.protectedTextPart('x\n', 'ceo@example.org')),
    ],
    [
      'gpgEd',
      'inline text altered',
      /does not match/,
      (s) => edit(S.inlineMessage(s, env(s), 'pay 10\n'), (x) => x.replace('pay 10', 'pay 90')),
    ],
  ]
  for (const [who, what, why, make] of badCases) {
    test(`fail: ${what}`, async (t) => {
      if (!signers[who]) return t.skip('no signers')
      const d = await check(make(signers[who]))
      assert.equal(d.result, 'fail', d.facts.reason)
      assert.match(d.facts.reason, why)
      assert.equal(d.verdict.code, 550)
      assert.equal(d.verdict.enhanced, '5.7.1')
    })
  }

  test('permerror: truncated signature, broken MIME; neutral: text outside an inline block', async (t) => {
    if (!signers.gpgEd) return t.skip('no signers')
    const s = signers.gpgEd
    const good = S.pgpMimeMessage(s, env(s), S.textPart('hello\n'))
    const truncated = edit(good, (x) =>
      x.replace(/(-----BEGIN PGP SIGNATURE-----\r\n\r\n[A-Za-z0-9+/]{24})[^]*?(\r\n-----END)/, '$1$2'),
    )
    const cut = edit(good, (x) => x.replace(/-----END PGP SIGNATURE-----[^]*$/, ''))
    const noClose = edit(good, (x) => x.replace(/--signed-[a-z0-9]+--/, ''))
    const noProtocol = edit(good, (x) => x.replace(' protocol="application/pgp-signature";', ''))
    for (const [what, m] of [
      ['truncated', truncated],
      ['cut off', cut],
      ['no close', noClose],
      ['no protocol', noProtocol],
    ] as const) {
      const d = await check(m)
      assert.equal(d.result, 'permerror', `${what}: ${d.facts.reason}`)
      assert.equal(d.verdict.action, 'continue')
    }
    const footer = edit(S.inlineMessage(s, env(s), 'hi\n'), (x) => `${x}\r\n-- \r\nlist footer\r\n`)
    assert.equal((await check(footer)).result, 'neutral')
  })
})
