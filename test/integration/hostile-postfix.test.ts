/**
 * Hostile messages that once took `linksec serve` down or fooled it, sent
 * through a real Postfix 3.7 (the private instance test/helpers/postfix.ts
 * starts, `milter_default_action = tempfail`) with `linksec serve` as its
 * milter, not only straight at the milter port: a protected From holding a
 * NUL and other control characters, a signature flood (the small case file,
 * and 5,000 signature packets over a 2 MB part), a From with two
 * angle-addresses, and forged Authentication-Results naming our authserv-id
 * behind a nested comment or with a trailing dot. For each: the SMTP reply
 * Postfix gives (code, enhanced status and linksec's sentence), what reached
 * smtp-sink, and that `linksec serve` is still running and answers /healthz
 * afterwards.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as openpgp from 'openpgp'
import { dearmor } from '../../core/verify/packets'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'
import {
  REPO_ROOT,
  startLinksecServe,
  startPostfix,
  swaks,
  type PostfixInstance,
  type ServeInstance,
  type SinkMessage,
} from '../helpers/postfix'
import { assembleSigned, textPart } from '../helpers/signers'

const TOOLS = { postfix: 'postfix', 'smtp-sink': 'postfix', swaks: 'swaks' }
const AUTHSERV = 'mx.linksec.test'
const CASES = path.join(REPO_ROOT, 'test', 'cases')
/** Recipient policy sources off (no DNS server needed for these messages; see postfix-milter.test.ts). */
const OFFLINE = { txt: false, mta_sts: false, dane: false }

/** A message file of test/cases/messages, as swaks sends it (it writes CRLF line ends itself). */
function caseMessage(name: string): string {
  return fs.readFileSync(path.join(CASES, 'messages', name), 'latin1')
}

/** The message of a JSON case (test/cases/NAME.json) that has it inline. */
function inlineCase(name: string): string {
  return (JSON.parse(fs.readFileSync(path.join(CASES, `${name}.json`), 'utf8')) as { message: string })
    .message
}

describe('hostile messages through real Postfix with linksec serve as its milter', () => {
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined
  let carol: openpgp.PrivateKey | undefined
  let ready = false

  before(async () => {
    if (!Object.keys(TOOLS).every((tool) => which(tool)) || !isRoot()) return
    const generated = await openpgp.generateKey({
      userIDs: [{ email: 'carol@example.org' }],
      format: 'object',
    })
    carol = generated.privateKey
    serve = await startLinksecServe({
      ini: {
        main: { authserv_id: AUTHSERV },
        log: { level: 'warn' },
        policy: OFFLINE,
        keys: { dir: 'keys', methods: 'local' },
      },
      files: {
        'keys/alice.pgp': fs.readFileSync(path.join(CASES, 'keys', 'alice.pgp'), 'latin1'),
        'keys/carol@example.org.pgp': carol.toPublic().armor(),
      },
    })
    // Room for the 2 MB flood with its signature block (Postfix's default limit is 10,240,000).
    pf = await startPostfix({
      milter: serve.milterAddress,
      milterDefaultAction: 'tempfail',
      extraMainCf: ['message_size_limit = 30000000'],
    })
    ready = true
  })

  after(async () => {
    await pf?.stop()
    await serve?.stop()
  })

  const skipUnlessReady = (t: Parameters<typeof needTools>[0]): boolean => {
    if (!needTools(t, TOOLS)) return false
    if (!needRoot(t, 'postfix-up.sh needs root (postfix start is reserved for root)')) return false
    assert.ok(ready, 'peers did not start')
    return true
  }

  /** linksec serve has not exited and /healthz answers 200. */
  async function assertServing(): Promise<void> {
    assert.equal(serve!.proc.exitCode, null, `linksec serve exited:\n${serve!.output()}`)
    assert.equal(serve!.proc.signalCode, null, `linksec serve was killed:\n${serve!.output()}`)
    const res = await fetch(`http://${serve!.httpAddress}/healthz`)
    await res.arrayBuffer()
    assert.equal(res.status, 200)
  }

  /** The server's lines of a swaks transcript (what a failure message needs; the message itself can be megabytes). */
  function serverLines(transcript: string): string {
    return transcript
      .split(/\r?\n/)
      .filter((l) => /^(<\S*|\*\*\*|===)/.test(l))
      .join('\n')
  }

  /** Sends `data` from `from`; asserts Postfix refused it at end of DATA with `reply` and delivered nothing. */
  async function assertRefused(from: string, data: string, reply: RegExp): Promise<void> {
    const before = pf!.sinkMessages().length
    const r = swaks(pf!, { from, data })
    assert.notEqual(r.status, 0, serverLines(r.transcript))
    assert.match(r.dataReply, reply, serverLines(r.transcript))
    // The reply is linksec's own (milter-reject), not Postfix's default action for a lost milter.
    assert.doesNotMatch(pf!.maillog(), /milter .* (unreachable|service unavailable)|can't read SMFIC/i)
    await assertServing()
    assert.equal(pf!.queued(), 0)
    assert.equal(pf!.sinkMessages().length, before)
  }

  it('a protected From with a NUL, ESC, BEL and a lone CR: 550 5.7.1 with a clean sentence, serve stays up', async (t) => {
    if (!skipUnlessReady(t)) return
    const data = caseMessage('pgp-mime-protected-from-controls.eml')
    assert.ok(data.includes('\0'), 'the case message carries a NUL')
    await assertRefused(
      'alice@example.org',
      data,
      // The reply quotes the protected From only after the sanitiser: no ESC, BEL, NUL or lone CR is
      // left. Postfix 3.7 cuts that MIME part header line at its NUL (the rest never reaches the
      // milter), so its text ends there; the milter port alone sees the whole line (test/cases).
      /^550 5\.7\.1 the OpenPGP signature of this message from alice@example\.org is not valid: the signed \(protected\) From Eve ?\[2J( <eve@attacker\.test> X-Injected: 1)? differs from the message's From alice@example\.org$/,
    )
  })

  it('a signature block with more than 8 signatures: 451 4.7.5 (not checked, never a pass)', async (t) => {
    if (!skipUnlessReady(t)) return
    await assertRefused(
      'alice@example.org',
      caseMessage('pgp-mime-signature-flood.eml'),
      /^451 4\.7\.5 the OpenPGP signature of this message from alice@example\.org could not be checked now \(the signature block holds more than 8 signatures; none was checked/,
    )
  })

  it('5,000 copies of a signature by the sender over a 2 MB part: 451 4.7.5, serve keeps answering', async (t) => {
    if (!skipUnlessReady(t)) return
    const inner = textPart(`${'0123456789abcdef'.repeat(63)}\n`.repeat(2 * 1024))
    const other = await openpgp.createMessage({ binary: new Uint8Array(Buffer.from('other data')) })
    const one = dearmor(
      (await openpgp.sign({ message: other, signingKeys: carol!, detached: true })) as string,
    )
    const armored = `-----BEGIN PGP SIGNATURE-----\n\n${Buffer.concat(Array<Buffer>(5000).fill(one))
      .toString('base64')
      .replace(/.{1,64}/g, '$&\n')}-----END PGP SIGNATURE-----\n`
    const raw = assembleSigned({ from: 'Carol <carol@example.org>' }, inner, armored)
    await assertRefused(
      'carol@example.org',
      raw.toString('latin1'),
      /^451 4\.7\.5 the OpenPGP signature of this message from carol@example\.org could not be checked now \(the signature block holds more than 8 signatures/,
    )
  })

  it('a From with two angle-addresses is not one mailbox: 451 4.7.5, never a pass', async (t) => {
    if (!skipUnlessReady(t)) return
    await assertRefused(
      'alice@example.org',
      caseMessage('pgp-mime-from-two-angle-addrs.eml'),
      /^451 4\.7\.5 the OpenPGP signature of this message from the sender could not be checked now \(the From field does not hold exactly one address/,
    )
  })

  it('forged Authentication-Results behind a nested comment or with a trailing dot are removed; others stay', async (t) => {
    if (!skipUnlessReady(t)) return
    const before = pf!.sinkMessages().length
    const r = swaks(pf!, { data: inlineCase('inbound-forged-authentication-results-cfws') })
    assert.equal(r.status, 0, r.transcript)
    assert.match(r.dataReply, /^250 2\.0\.0 Ok: queued/, r.transcript)
    const mine = (m: SinkMessage) =>
      m.headers.some(([n, v]) => n === 'Message-ID' && v === '<cfws@example.org>')
    const msg = (await pf!.waitForSink(before + 1, undefined, mine)).find(mine)
    assert.ok(msg, 'the message reached the sink')
    const ars = msg.headers
      .filter(([n]) => n === 'Authentication-Results')
      .map(([, v]) => v.replace(/\r?\n[ \t]+/g, ' '))
    // Ours on top; every forged one (nested comment, trailing dot, quoted, capitals, escaped paren) gone.
    assert.equal(ars[0], `${AUTHSERV}; x-tls=none`)
    // Other ids stay, the look-alike included; under ours only linksec's own results (x-tls, x-openpgp).
    const others = ars.filter((v) => !v.startsWith(`${AUTHSERV};`))
    assert.deepEqual(others.sort(), [
      'mx.linksec.test.evil; spf=pass',
      'other.example; spf=pass (mx.linksec.test)',
    ])
    for (const v of ars.filter((a) => a.startsWith(`${AUTHSERV};`)))
      assert.match(v, /^mx\.linksec\.test; (x-tls=none|x-openpgp=(none|temperror) )/, `not ours: ${v}`)
    assert.ok(
      !ars.some((v) => /=pass/.test(v) && !v.startsWith('other.') && !v.includes('.evil')),
      ars.join(' | '),
    )
    await assertServing()
  })
})
