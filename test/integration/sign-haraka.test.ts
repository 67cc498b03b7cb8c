/**
 * Signing through a real Haraka (node_modules/Haraka) with Haraka's own
 * `auth/flat_file` plugin: a user logs in with swaks or real mutt (AUTH PLAIN over
 * STARTTLS), linksec signs her transaction at data_post, plugins/body.ts
 * puts the multipart/signed body into the transaction, and Haraka's outbound
 * relays it to a second real Haraka (the next hop pinned by test_mx, no MX
 * lookup). What that next hop received verifies with gpg, sq and rnp (the
 * RFC 3156 signed part exactly as received) and with linksec. Inputs: plain,
 * 8-bit text with a binary attachment, and a body with trailing whitespace,
 * 8-bit bytes and a line starting "From " sent raw (swaks --no-data-fixup).
 * A body with bare LF line ends never reaches linksec here: Haraka 3.3
 * answers `451 Bare line-feed` inside DATA (its SMTP-smuggling guard) and
 * drops the session; the test holds it to that, so such a message is never
 * relayed unsigned. sign.test declares sig=required on the loopback
 * DNS: a login without a key gets 451 4.7.0, a login using a From it may not
 * use 550 5.7.1, and neither reaches the next hop.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeTransfer, headerValue, parseEntity, toCrlf } from '../../core/mime'
import type { TestDnsServer } from '../helpers/dns-server'
import { REPO_ROOT, selfSignedCert, startHaraka, type HarakaInstance } from '../helpers/haraka'
import * as W from '../helpers/sign-world'
import { needTools, which } from '../helpers/tools'
import { detachedParts } from '../helpers/verifiers'

const TOOLS = { swaks: 'swaks', gpg: 'gnupg', sq: 'sq', rnp: 'rnp', openssl: 'openssl' }
const BOB = `bob@${W.SIGN_DOMAIN}`

/** The raw body: trailing blanks, 8-bit bytes, "From " and dots at line starts, a blank last line. */
const RAW_TEXT = Buffer.from(
  'Grüße  \r\nFrom the start\t\r\n.one dot\r\n..two dots\r\n\r\nlast line \r\n',
  'utf8',
)

function rawMessage(subject: string, text = RAW_TEXT, cte = '8bit'): Buffer {
  return Buffer.concat([
    Buffer.from(
      `From: <${W.ALICE}>\r\nTo: <bob@example.net>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@${W.SIGN_DOMAIN}>\r\n` +
        `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n`,
    ),
    // On the wire a line starting with "." gets one more (RFC 5321 §4.5.2).
    Buffer.from(text.toString('latin1').replace(/^\./gm, '..'), 'latin1'),
    // swaks --no-data-fixup sends the data, then CRLF: the data ends with the dot itself.
    Buffer.from('.'),
  ])
}

describe('signing through a real Haraka with auth_flat_file', () => {
  let dns: TestDnsServer | undefined
  let nextHop: HarakaInstance | undefined
  let signer: HarakaInstance | undefined
  let scratch: string
  let ready = false

  before(async () => {
    if (!Object.keys(TOOLS).every((tool) => which(tool))) return
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-sign-haraka-'))
    dns = await W.signDns()
    nextHop = await startHaraka({ plugins: ['test_sink'] })
    signer = await startHaraka({
      plugins: ['tls', 'auth/flat_file', 'linksec', 'test_mx'],
      testMx: { 'example.net': `127.0.0.1:${nextHop.port}` },
      config: {
        'auth_flat_file.ini': `[core]\nmethods=PLAIN,LOGIN\n\n[users]\n${W.ALICE}=${W.PASSWORD}\n${BOB}=${W.PASSWORD}\n`,
      },
      linksec: {
        main: { domain: W.SIGN_DOMAIN },
        resolver: { servers: dns.address },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'local' },
        sign: { enabled: true },
      },
    })
    W.generateKey(path.join(signer.dir, 'config'), W.ALICE)
    ready = true
  })

  after(async () => {
    await signer?.stop()
    await nextHop?.stop()
    await dns?.close()
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true })
  })

  const skipUnlessReady = (t: Parameters<typeof needTools>[0]): boolean => {
    if (!needTools(t, TOOLS)) return false
    assert.ok(ready, 'peers did not start')
    return true
  }

  async function relayed(subject: string): Promise<Buffer> {
    const found = await nextHop!.waitForQueued(1, 30_000).then(async () => {
      const end = Date.now() + 30_000
      for (;;) {
        const m = nextHop!.queued().find((q) => q.raw.includes(`Subject: ${subject}\r\n`))
        if (m) return m
        if (Date.now() > end)
          throw new Error(`${subject} did not reach the next hop\n${signer!.log().slice(-3000)}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    })
    return toCrlf(Buffer.from(found.raw, 'latin1'))
  }

  const configDir = () => path.join(signer!.dir, 'config')

  it('a logged-in user is signed on the way out; gpg, sq, rnp and linksec verify what the next hop got', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: signer!.port,
      from: W.ALICE,
      login: W.ALICE,
      message: W.plainMessage(W.ALICE, 'hk-plain'),
    })
    assert.match(r.dataReply, /^250 /, r.transcript)
    await W.assertSignedAndVerified(await relayed('hk-plain'), configDir(), scratch, dns!)
  })

  it('8-bit text and a binary attachment: verified, and decoded byte for byte', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: signer!.port,
      from: W.ALICE,
      login: W.ALICE,
      message: W.mixedMessage(W.ALICE, 'hk-mixed'),
    })
    assert.match(r.dataReply, /^250 /, r.transcript)
    const msg = await relayed('hk-mixed')
    await W.assertSignedAndVerified(msg, configDir(), scratch, dns!)
    W.assertPartsIntact(msg)
  })

  it('trailing whitespace, 8-bit bytes and "From " sent raw: signed, verified, the text kept', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: signer!.port,
      from: W.ALICE,
      login: W.ALICE,
      message: rawMessage('hk-raw8bit'),
      raw: true,
    })
    assert.match(r.dataReply, /^250 /, r.transcript)
    const msg = await relayed('hk-raw8bit')
    await W.assertSignedAndVerified(msg, configDir(), scratch, dns!)
    // The signed entity is 7-bit safe (RFC 3156 §3) and decodes to the text with CRLF line ends.
    const inner = parseEntity(detachedParts(msg).data)
    const cte = headerValue(inner.headers, 'content-transfer-encoding')
    assert.match(cte ?? '', /quoted-printable|base64/i, 'the 8-bit text is re-encoded 7-bit')
    assert.ok(!/[\x80-\xff]/.test(msg.toString('latin1')), 'no 8-bit byte left in the relayed message')
    assert.deepEqual(decodeTransfer(inner.body, cte), RAW_TEXT)
  })

  it('7-bit lines starting with dots (kept as they are in the signed part) survive the relay', async (t) => {
    if (!skipUnlessReady(t)) return
    const text = Buffer.from('.one dot\r\n..two dots\r\n.\r\nend  \r\n')
    const r = await W.submit({
      port: signer!.port,
      from: W.ALICE,
      login: W.ALICE,
      message: rawMessage('hk-dots', text, '7bit'),
      raw: true,
    })
    assert.match(r.dataReply, /^250 /, r.transcript)
    const msg = await relayed('hk-dots')
    await W.assertSignedAndVerified(msg, configDir(), scratch, dns!)
    const inner = parseEntity(detachedParts(msg).data)
    assert.deepEqual(
      decodeTransfer(inner.body, headerValue(inner.headers, 'content-transfer-encoding')),
      text,
    )
  })

  it('bare LF line ends: Haraka answers 451 inside DATA, nothing is relayed unsigned', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: signer!.port,
      from: W.ALICE,
      login: W.ALICE,
      message: rawMessage('hk-barelf', Buffer.from('Gr\xfc\xdfe  \nbare LF line\n', 'latin1')),
      raw: true,
    })
    assert.match(r.transcript, /<~\*? 451 Bare line-feed/, r.transcript)
  })

  it('the shipped examples/haraka/signing configuration signs a logged-in user', async (t) => {
    if (!skipUnlessReady(t)) return
    const dir = path.join(REPO_ROOT, 'examples', 'haraka', 'signing', 'config')
    const file = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8')
    const plugins = file('plugins')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
    assert.deepEqual(plugins, ['tls', 'auth/flat_file', 'linksec'])
    // Only the test's own: the next hop pinned (test_mx), the loopback DNS, a password.
    const ex = await startHaraka({
      plugins: [...plugins, 'test_mx'],
      testMx: { 'example.net': `127.0.0.1:${nextHop!.port}` },
      config: { 'auth_flat_file.ini': file('auth_flat_file.ini').replace('=change-me', `=${W.PASSWORD}`) },
      linksecIniText: `${file('linksec.ini')}\n[resolver]\nservers=${dns!.address}\n`,
    })
    try {
      W.generateKey(path.join(ex.dir, 'config'), 'alice@example.org')
      const r = await W.submit({
        port: ex.port,
        from: 'alice@example.org',
        login: 'alice@example.org',
        message: W.plainMessage('alice@example.org', 'hk-example'),
      })
      assert.match(r.dataReply, /^250 /, r.transcript)
      const msg = await relayed('hk-example')
      await W.assertSignedAndVerified(msg, path.join(ex.dir, 'config'), scratch, dns!, 'alice@example.org')
    } finally {
      await ex.stop()
    }
  })

  it('mutt submits with AUTH over STARTTLS: signed on the way out, verified at the next hop', async (t) => {
    if (!skipUnlessReady(t)) return
    if (!needTools(t, { mutt: 'mutt' })) return
    const r = await W.muttSubmit({
      port: signer!.port,
      login: W.ALICE,
      certPem: selfSignedCert().cert,
      subject: 'hk-mutt',
      body: 'Sent with mutt, Grüße.\n',
      home: fs.mkdtempSync(path.join(scratch, 'mutt-')),
    })
    assert.equal(r.code, 0, r.out)
    const msg = await relayed('hk-mutt')
    assert.match(msg.toString('latin1'), /^Message-ID: <[^>]+@client\.sign\.test>/im)
    await W.assertSignedAndVerified(msg, configDir(), scratch, dns!)
  })

  it('a login without a secret key gets 451 4.7.0 and nothing is relayed', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: signer!.port,
      from: BOB,
      login: BOB,
      message: W.plainMessage(BOB, 'hk-nokey'),
    })
    assert.match(r.dataReply, /^451 4\.7\.0 .*no secret key for bob@sign\.test.*sig=required/, r.transcript)
  })

  it('a login using a From it may not use gets 550 5.7.1 and nothing is relayed', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: signer!.port,
      from: BOB,
      login: BOB,
      message: W.plainMessage(W.ALICE, 'hk-notallowed'),
    })
    assert.match(r.dataReply, /^550 5\.7\.1 .*bob@sign\.test may not send as alice@sign\.test/, r.transcript)
    assert.ok(dns!.asked(`_linksec.${W.SIGN_DOMAIN}`, 'TXT') > 0, 'the _linksec record was looked up')
    // Neither refused message reached the next hop (the signed ones did, so outbound ran).
    const subjects = nextHop!.queued().map((q) => /^Subject: (.*)$/m.exec(q.raw)?.[1])
    for (const refused of ['hk-nokey', 'hk-notallowed', 'hk-barelf'])
      assert.ok(!subjects.includes(refused), `${refused} reached the next hop: ${subjects.join(', ')}`)
  })
})
