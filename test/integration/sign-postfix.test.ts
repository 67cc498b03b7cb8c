/**
 * Signing through a real Postfix 3.7 with SMTP AUTH (Cyrus SASL, a sasldb in
 * the private instance: `<config_directory>/sasl/smtpd.conf`, Debian's
 * place for it) and `linksec serve` as its milter. sign.test declares
 * sig=required on the loopback DNS. A user who logs in gets her mail signed
 * on the way out (gpg, sq, rnp and linksec verify it at the sink; 8-bit and
 * binary parts decode to what she sent), also when real mutt submits it
 * (SMTP AUTH over STARTTLS) and when bare LF, trailing blanks and dot lines
 * are sent raw; a login without a key gets
 * 451 4.7.0; a login using a From it may not use is refused, never sent.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeTransfer, headerValue, parseEntity, toCrlf } from '../../core/mime'
import type { TestDnsServer } from '../helpers/dns-server'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from '../helpers/postfix'
import * as W from '../helpers/sign-world'
import { detachedParts } from '../helpers/verifiers'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'

const TOOLS = {
  postfix: 'postfix',
  swaks: 'swaks',
  saslpasswd2: 'sasl2-bin',
  gpg: 'gnupg',
  sq: 'sq',
  rnp: 'rnp',
}
const USERS = [W.ALICE, `bob@${W.SIGN_DOMAIN}`]

describe('signing through a real Postfix with SMTP AUTH', () => {
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined
  let dns: TestDnsServer | undefined
  let scratch: string
  let ready = false

  before(async () => {
    if (!Object.keys(TOOLS).every((tool) => which(tool)) || !isRoot()) return
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-sign-pf-'))
    fs.chmodSync(scratch, 0o755)
    dns = await W.signDns()
    serve = await startLinksecServe({
      ini: {
        main: { authserv_id: 'mx.sign.test', domain: W.SIGN_DOMAIN },
        log: { level: 'warn' },
        resolver: { servers: dns.address },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'local' },
        sign: { enabled: true },
      },
    })
    W.generateKey(serve.configDir, W.ALICE)
    pf = await startPostfix({
      milter: serve.milterAddress,
      extraMainCf: ['smtpd_sasl_auth_enable = yes', 'smtpd_sasl_type = cyrus', 'smtpd_sasl_path = smtpd'],
    })
    W.saslConfig(pf.conf, scratch, USERS)
    ready = true
  })

  after(async () => {
    await pf?.stop()
    await serve?.stop()
    await dns?.close()
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true })
  })

  const skipUnlessReady = (t: Parameters<typeof needTools>[0]): boolean => {
    if (!needTools(t, TOOLS)) return false
    if (!needRoot(t, 'postfix start is reserved for root')) return false
    assert.ok(ready, 'peers did not start')
    return true
  }

  async function delivered(subject: string): Promise<Buffer> {
    const [m] = await pf!.waitForSink(1, 30_000, (x) => x.message.includes(`Subject: ${subject}`))
    const found = pf!.sinkMessages().find((x) => x.message.includes(`Subject: ${subject}`)) ?? m!
    // smtp-sink's dump has LF line ends; the message crossed SMTP with CRLF.
    return toCrlf(Buffer.from(found.message, 'latin1'))
  }

  it('a logged-in user is signed on the way out; gpg, sq, rnp and linksec verify it at the sink', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: pf!.port,
      from: W.ALICE,
      login: W.ALICE,
      message: W.plainMessage(W.ALICE, 'pf-plain'),
    })
    assert.match(r.dataReply, /^250 /, r.transcript)
    await W.assertSignedAndVerified(await delivered('pf-plain'), serve!.configDir, scratch, dns!)
  })

  it('8-bit text and a binary attachment survive: verified, and decoded byte for byte', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: pf!.port,
      from: W.ALICE,
      login: W.ALICE,
      message: W.mixedMessage(W.ALICE, 'pf-mixed'),
    })
    assert.match(r.dataReply, /^250 /, r.transcript)
    const msg = await delivered('pf-mixed')
    await W.assertSignedAndVerified(msg, serve!.configDir, scratch, dns!)
    W.assertPartsIntact(msg)
  })

  it('bare LF line ends, trailing blanks and 8-bit bytes sent raw: signed in CRLF form, verified, the text kept', async (t) => {
    if (!skipUnlessReady(t)) return
    const text = 'Gr\xfc\xdfe  \nbare LF line\t\n.dot line\nlast\n'
    const message = Buffer.from(
      `From: <${W.ALICE}>\r\nTo: <bob@example.net>\r\nSubject: pf-barelf\r\nMIME-Version: 1.0\r\n` +
        `Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n` +
        // On the wire a line starting with "." gets one more (RFC 5321 §4.5.2); swaks adds the final CRLF.
        `${text.replace(/^\./gm, '..')}.`,
      'latin1',
    )
    const r = await W.submit({ port: pf!.port, from: W.ALICE, login: W.ALICE, message, raw: true })
    // Postfix takes a bare LF as a line end (smtpd_forbid_bare_newline is off in 3.7), so linksec signs it.
    assert.match(r.dataReply, /^250 /, r.transcript)
    const msg = await delivered('pf-barelf')
    await W.assertSignedAndVerified(msg, serve!.configDir, scratch, dns!)
    const inner = parseEntity(detachedParts(msg).data)
    assert.deepEqual(
      decodeTransfer(inner.body, headerValue(inner.headers, 'content-transfer-encoding')),
      Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'),
    )
  })

  it('mutt submits with SMTP AUTH over STARTTLS: the message is signed on the way out', async (t) => {
    if (!skipUnlessReady(t)) return
    if (!needTools(t, { mutt: 'mutt' })) return
    const r = await W.muttSubmit({
      port: pf!.port,
      login: W.ALICE,
      certPem: fs.readFileSync(path.join(pf!.conf, 'tls.crt'), 'utf8'),
      subject: 'pf-mutt',
      body: 'Sent with mutt, Grüße.\n',
      home: fs.mkdtempSync(path.join(scratch, 'mutt-')),
    })
    assert.equal(r.code, 0, r.out)
    const msg = await delivered('pf-mutt')
    // Mutt's own Message-ID (from its hostname), sent with AUTH (ESMTPSA).
    assert.match(msg.toString('latin1'), /^Message-ID: <[^>]+@client\.sign\.test>/im)
    assert.match(msg.toString('latin1'), /with ESMTPSA id/)
    await W.assertSignedAndVerified(msg, serve!.configDir, scratch, dns!)
  })

  it('a login without a secret key gets 451 4.7.0, never an unsigned message', async (t) => {
    if (!skipUnlessReady(t)) return
    const bob = `bob@${W.SIGN_DOMAIN}`
    const r = await W.submit({
      port: pf!.port,
      from: bob,
      login: bob,
      message: W.plainMessage(bob, 'pf-nokey'),
    })
    assert.match(r.dataReply, /^451 4\.7\.0 .*no secret key for bob@sign\.test/, r.transcript)
  })

  it('a login using a From it may not use gets 550 5.7.1', async (t) => {
    if (!skipUnlessReady(t)) return
    const bob = `bob@${W.SIGN_DOMAIN}`
    const r = await W.submit({
      port: pf!.port,
      from: W.ALICE,
      login: bob,
      message: W.plainMessage(W.ALICE, 'pf-notallowed'),
    })
    // sign.test declares sig=required on the test DNS: refused for good, never sent unsigned.
    assert.match(r.dataReply, /^550 5\.7\.1 .*bob@sign\.test may not send as alice@sign\.test/, r.transcript)
    assert.ok(dns!.asked(`_linksec.${W.SIGN_DOMAIN}`, 'TXT') > 0, 'the _linksec record was looked up')
  })
})
