/**
 * Real Postfix 3.7 on loopback with `smtpd_milters` pointing at `linksec
 * serve` and `milter_default_action = tempfail`: messages reach smtp-sink
 * carrying our Authentication-Results; a tagged message over plain SMTP gets
 * 550 5.7.10 and reaches no sink; with linksec stopped Postfix answers 4xx
 * and accepts nothing.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as net from 'node:net'
import * as path from 'node:path'
import * as tls from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'
import {
  startLinksecServe,
  startPostfix,
  swaks,
  type PostfixInstance,
  type ServeInstance,
  type SinkMessage,
} from '../helpers/postfix'

const TOOLS = { postfix: 'postfix', 'smtp-sink': 'postfix', swaks: 'swaks' }
const AUTHSERV = 'mx.linksec.test'
/**
 * The policy engine's network sources are off: recipient domains are judged
 * by the (empty) static list, so tagged mail is routed without a lookup
 * (test/integration/enforce-postfix.test.ts runs them against a loopback DNS).
 */
const OFFLINE = { txt: false, mta_sts: false, dane: false }

describe('Postfix with linksec serve as its milter', () => {
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined
  let ready = false

  before(async () => {
    // Without the tools or root, each test reports why (needTools fails in CI, skips locally).
    if (!Object.keys(TOOLS).every((tool) => which(tool)) || !isRoot()) return
    serve = await startLinksecServe({
      ini: { main: { authserv_id: AUTHSERV }, log: { level: 'warn' }, policy: OFFLINE },
    })
    pf = await startPostfix({ milter: serve.milterAddress, milterDefaultAction: 'tempfail' })
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

  it('relays a plain message with x-tls=none added at the top', async (t) => {
    if (!skipUnlessReady(t)) return
    const before = pf!.sinkMessages().length
    const r = swaks(pf!, { headers: ['Subject: plain'] })
    assert.equal(r.status, 0, r.transcript)
    const msgs = await pf!.waitForSink(before + 1)
    const msg = msgs.find((m) => m.headers.some(([n, v]) => n === 'Subject' && v === 'plain'))!
    assert.ok(msg, 'the message reached the sink')
    assert.deepEqual(msg.headers[0], ['Authentication-Results', `${AUTHSERV}; x-tls=none`])
    assert.ok(!msg.headers.some(([n]) => n === 'X-Linksec-Route'), 'untagged mail is not routed')
  })

  it('says TLS and names the version for a message sent with STARTTLS', async (t) => {
    if (!skipUnlessReady(t)) return
    const before = pf!.sinkMessages().length
    const r = swaks(pf!, { tls: true, headers: ['Subject: over tls'] })
    assert.equal(r.status, 0, r.transcript)
    const msgs = await pf!.waitForSink(before + 1)
    const msg = msgs.find((m) => m.headers.some(([n, v]) => n === 'Subject' && v === 'over tls'))!
    const ar = msg.headers.find(([n]) => n === 'Authentication-Results')![1]
    assert.match(
      ar,
      new RegExp(`^${AUTHSERV}; x-tls=pass smtp\\.version=TLSv1\\.[23] smtp\\.cipher=\\S+ smtp\\.bits=\\d+$`),
    )
  })

  it('rejects a tagged message over plain SMTP with 550 5.7.10; nothing reaches the sink', async (t) => {
    if (!skipUnlessReady(t)) return
    const before = pf!.sinkMessages().length
    const r = swaks(pf!, { headers: ['Link-Security-Required: 3', 'Subject: tagged plain'] })
    assert.notEqual(r.status, 0)
    assert.match(
      r.dataReply,
      /^550 5\.7\.10 this message is tagged Link-Security-Required: 3 .*STARTTLS/,
      r.transcript,
    )
    assert.match(pf!.maillog(), /milter-reject: END-OF-MESSAGE .*: 5\.7\.10 this message is tagged/)
    assert.equal(pf!.queued(), 0)
    assert.equal(pf!.sinkMessages().length, before)
  })

  it('relays a tagged message that came over STARTTLS', async (t) => {
    if (!skipUnlessReady(t)) return
    const before = pf!.sinkMessages().length
    const r = swaks(pf!, { tls: true, headers: ['Link-Security-Required: 3', 'Subject: tagged tls'] })
    assert.equal(r.status, 0, r.transcript)
    const msgs = await pf!.waitForSink(before + 1)
    const msg = msgs.find((m) => m.headers.some(([n, v]) => n === 'Subject' && v === 'tagged tls'))
    assert.ok(msg, 'the tagged message reached the sink')
    // The route header milter_header_checks would turn into FILTER (this Postfix has none, so it travels on).
    assert.deepEqual(
      msg.headers.filter(([n]) => n === 'X-Linksec-Route'),
      [['X-Linksec-Route', 'encrypt; level=3']],
    )
  })

  it('removes a forged Authentication-Results that claims our authserv-id', async (t) => {
    if (!skipUnlessReady(t)) return
    const before = pf!.sinkMessages().length
    const forged = `Authentication-Results: ${AUTHSERV}; x-tls=pass smtp.version=TLSv1.3`
    const r = swaks(pf!, {
      headers: [forged, 'Authentication-Results: other.example; spf=pass', 'Subject: forged'],
    })
    assert.equal(r.status, 0, r.transcript)
    const subject = (m: SinkMessage) => m.headers.some(([n, v]) => n === 'Subject' && v === 'forged')
    const msg = (await pf!.waitForSink(before + 1, undefined, subject)).find(subject)!
    const ars = msg.headers.filter(([n]) => n === 'Authentication-Results').map(([, v]) => v)
    assert.equal(ars[0], `${AUTHSERV}; x-tls=none`)
    assert.ok(
      !ars.includes(forged.slice('Authentication-Results: '.length)),
      `forged field still there: ${ars.join(' | ')}`,
    )
    assert.ok(ars.includes('other.example; spf=pass'), 'fields of other authserv-ids stay')
    // Other policies may add their own fields under our id; each is ours, none is the forged one.
    for (const v of ars.filter((a) => a.startsWith(AUTHSERV))) assert.match(v, /; x-(tls|openpgp)=/)
  })

  it('judges the link right when the client skips EHLO after STARTTLS (TLS macros come with MAIL too)', async (t) => {
    if (!skipUnlessReady(t)) return
    const before = pf!.sinkMessages().length
    const replies = await smtpWithoutEhloAfterStarttls(
      pf!.port,
      'Link-Security-Required: 3\r\nSubject: no ehlo after tls',
    )
    assert.match(replies.at(-2)!, /^250 /, replies.join(' | '))
    const subject = (m: SinkMessage) =>
      m.headers.some(([n, v]) => n === 'Subject' && v === 'no ehlo after tls')
    const msg = (await pf!.waitForSink(before + 1, undefined, subject)).find(subject)!
    assert.match(msg.headers[0]![1], /^mx\.linksec\.test; x-tls=pass smtp\.version=TLSv1/)
  })

  it('with linksec stopped, Postfix answers 4xx and accepts nothing', async (t) => {
    if (!skipUnlessReady(t)) return
    const code = await serve!.stop('SIGTERM')
    assert.equal(code, 0, `linksec serve exits 0 on SIGTERM:\n${serve!.output()}`)
    const before = pf!.sinkMessages().length
    const r = swaks(pf!, { headers: ['Subject: milter down'] })
    assert.notEqual(r.status, 0)
    assert.match(r.transcript, /^<\S*\s+4\d\d[ -]4\.\d+\.\d+ /m, r.transcript)
    await new Promise((res) => setTimeout(res, 300))
    assert.equal(pf!.queued(), 0)
    assert.equal(pf!.sinkMessages().length, before)
  })
})

describe('Postfix with linksec serve on a unix socket', () => {
  it('relays a message through unix:PATH', async (t) => {
    if (!needTools(t, TOOLS)) return
    if (!needRoot(t, 'postfix-up.sh needs root (postfix start is reserved for root)')) return
    // Postfix's smtpd runs as user postfix: the directory must be traversable.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-sock-'))
    fs.chmodSync(dir, 0o755)
    const sock = path.join(dir, 'milter.sock')
    const serve = await startLinksecServe({
      milterListen: `unix:${sock}`,
      ini: { main: { authserv_id: AUTHSERV }, policy: OFFLINE },
    })
    const pf = await startPostfix({ milter: `unix:${sock}` }).catch(async (e: unknown) => {
      await serve.stop()
      throw e
    })
    try {
      const r = swaks(pf, { headers: ['Subject: via unix'] })
      assert.equal(r.status, 0, r.transcript)
      const [msg] = await pf.waitForSink(1)
      assert.deepEqual(msg!.headers[0], ['Authentication-Results', `${AUTHSERV}; x-tls=none`])
    } finally {
      await pf.stop()
      await serve.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** EHLO, STARTTLS, then MAIL straight away (RFC 3207 only says SHOULD re-EHLO); returns every reply line. */
async function smtpWithoutEhloAfterStarttls(port: number, headers: string): Promise<string[]> {
  const replies: string[] = []
  let socket: net.Socket | tls.TLSSocket = net.connect(port, '127.0.0.1')
  let buffered = ''
  let waiting: ((line: string) => void) | undefined
  const onData = (d: Buffer) => {
    buffered += d.toString('latin1')
    let nl: number
    while ((nl = buffered.indexOf('\r\n')) >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 2)
      if (/^\d{3} /.test(line)) {
        replies.push(line)
        waiting?.(line)
      }
    }
  }
  socket.on('data', onData)
  const reply = () => new Promise<string>((resolve) => (waiting = resolve))
  const say = async (cmd: string) => {
    const r = reply()
    socket.write(cmd + '\r\n')
    return r
  }
  await reply() // 220 greeting
  await say('EHLO client.example.test')
  await say('STARTTLS')
  socket.off('data', onData)
  socket = tls.connect({ socket, rejectUnauthorized: false, servername: 'mta.example.test' })
  await new Promise((resolve) => socket.once('secureConnect', resolve))
  socket.on('data', onData)
  await say('MAIL FROM:<alice@example.org>')
  await say('RCPT TO:<bob@example.net>')
  await say('DATA')
  await say(`${headers}\r\nFrom: alice@example.org\r\n\r\nHello.\r\n.`)
  await say('QUIT')
  socket.destroy()
  return replies
}
