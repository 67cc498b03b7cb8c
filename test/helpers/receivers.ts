/**
 * The receiving side of the no-downgrade tests, all real Haraka servers on
 * loopback (test/helpers/haraka.ts), each writing what it got to its sink:
 *
 *   plain   no `tls` plugin: offers no STARTTLS
 *   tls     STARTTLS with a self-signed certificate, no linksec: declares nothing
 *   level4  linksec at level 4 (EHLO `LINKSEC 4`, REQUIRETLS after STARTTLS)
 *           with a certificate for `mx.level4.test` from the test CA
 *   dsn     plain sink for the bounces (the senders' domain routes here)
 *
 * plus `submit()`, a small SMTP client that can send `MAIL FROM … REQUIRETLS`
 * (swaks cannot add MAIL parameters), and `pinnedMxPlugin()`, a Haraka
 * get_mx plugin that pins each test domain to 127.0.0.1:PORT with an MX name
 * (`from_dns`), so certificates are checked against a name and outbound never
 * does a DNS lookup.
 */
import * as net from 'node:net'
import * as tls from 'node:tls'
import { startHaraka, type HarakaInstance, type QueuedMessage } from './haraka'
import { testCa } from './test-ca'

export type ReceiverKind = 'plain' | 'tls' | 'level4' | 'dsn'

export interface Receiver {
  kind: ReceiverKind
  /** The mail domain routed to it, e.g. "plain.test". */
  domain: string
  /** Its MX name (certificate name for level4), e.g. "mx.plain.test". */
  mxName: string
  haraka: HarakaInstance
  /** Messages it accepted so far. */
  got(): QueuedMessage[]
}

export const RECEIVER_DOMAINS: Record<ReceiverKind, string> = {
  plain: 'plain.test',
  tls: 'tls.test',
  level4: 'level4.test',
  dsn: 'sender.test',
}

async function startReceiver(kind: ReceiverKind): Promise<Receiver> {
  const domain = RECEIVER_DOMAINS[kind]
  const mxName = `mx.${domain}`
  let haraka: HarakaInstance
  if (kind === 'level4') {
    const leaf = await testCa().leaf([mxName])
    haraka = await startHaraka({
      plugins: ['tls', 'linksec', 'test_sink'],
      linksec: { main: { level: 4, mailboxes_tls_only: true } },
      tlsKeyPem: leaf.key,
      tlsCertPem: leaf.cert,
    })
  } else {
    haraka = await startHaraka({ plugins: kind === 'tls' ? ['tls', 'test_sink'] : ['test_sink'] })
  }
  return { kind, domain, mxName, haraka, got: () => haraka.queued() }
}

/** Starts the receivers (default all four) in parallel; stops whichever started if one fails. */
export async function startReceivers(
  kinds: readonly ReceiverKind[] = ['plain', 'tls', 'level4', 'dsn'],
): Promise<Record<ReceiverKind, Receiver>> {
  const settled = await Promise.allSettled(kinds.map(startReceiver))
  const failed = settled.find((s) => s.status === 'rejected')
  if (failed) {
    await Promise.all(settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.haraka.stop()] : [])))
    throw failed.reason
  }
  const out = {} as Record<ReceiverKind, Receiver>
  for (const s of settled) if (s.status === 'fulfilled') out[s.value.kind] = s.value
  return out
}

export async function stopReceivers(r: Partial<Record<ReceiverKind, Receiver>> | undefined): Promise<void> {
  if (!r) return
  await Promise.all(Object.values(r).map((x) => x?.haraka.stop()))
}

/**
 * A Haraka plugin (JavaScript source) answering get_mx from
 * config/pinned_mx.ini `[domains] example.test=mx.example.test:127.0.0.1:2525`.
 * Unknown domains get DENYSOFT: outbound never looks anything up.
 */
export const PINNED_MX_PLUGIN = `
exports.register = function () { this.load_ini(); this.register_hook('get_mx', 'pinned_mx', 0) }
exports.load_ini = function () { this.cfg = this.config.get('pinned_mx.ini', () => this.load_ini()) }
exports.pinned_mx = function (next, hmail, domain) {
  const hop = (this.cfg.domains || {})[domain]
  if (!hop) return next(DENYSOFT, 'pinned_mx: no next hop for ' + domain)
  const [name, exchange, port] = hop.split(':')
  next(OK, { exchange, port: Number(port), priority: 0, from_dns: name })
}
`

/** pinned_mx.ini for these receivers. */
export function pinnedMxIni(receivers: Record<ReceiverKind, Receiver>): string {
  const lines = Object.values(receivers).map((r) => `${r.domain}=${r.mxName}:127.0.0.1:${r.haraka.port}`)
  return `[domains]\n${lines.join('\n')}\n`
}

export interface Submission {
  port: number
  from: string
  to: string[]
  /** The message, CRLF or LF line ends. */
  data: string
  starttls?: boolean
  /** MAIL FROM parameters, e.g. ['REQUIRETLS']. */
  mailParams?: string[]
  helo?: string
}

export interface SubmitResult {
  /** The reply to the end of DATA (or the first refusal), e.g. "250 …" or "550 5.7.10 …". */
  reply: string
  accepted: boolean
}

/** A line reader over a socket that can be swapped for its TLS upgrade. */
class SmtpConversation {
  private buf = ''
  private waiting: ((reply: string) => void) | undefined
  private lines: string[] = []

  constructor(private sock: net.Socket) {
    this.listen()
  }

  private listen() {
    this.sock.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1')
      let i
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).replace(/\r$/, '')
        this.buf = this.buf.slice(i + 1)
        this.lines.push(line)
        if (line.charAt(3) === ' ' && this.waiting) {
          const reply = this.lines.join('\n')
          this.lines = []
          const w = this.waiting
          this.waiting = undefined
          w(reply)
        }
      }
    })
  }

  reply(): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('SMTP reply timeout')), 20_000)
      this.waiting = (r) => {
        clearTimeout(timer)
        resolve(r)
      }
    })
  }

  async send(line: string): Promise<string> {
    const r = this.reply()
    this.sock.write(line + '\r\n')
    return r
  }

  async upgrade(): Promise<void> {
    this.sock.removeAllListeners('data')
    const secure = tls.connect({
      socket: this.sock,
      rejectUnauthorized: false,
      servername: 'mx.linksec.test',
    })
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve)
      secure.once('error', reject)
    })
    this.sock = secure
    this.listen()
  }

  end() {
    this.sock.destroy()
  }
}

const ok = (r: string) => /^2/.test(r)

/** Sends one message; resolves with the final reply (never throws for a refusal). */
export async function submit(s: Submission): Promise<SubmitResult> {
  const sock = net.connect(s.port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve)
    sock.once('error', reject)
  })
  const c = new SmtpConversation(sock)
  try {
    const steps = async (): Promise<string> => {
      await c.reply()
      const helo = s.helo ?? 'client.sender.test'
      let r = await c.send(`EHLO ${helo}`)
      if (s.starttls !== false) {
        r = await c.send('STARTTLS')
        if (!ok(r)) return r
        await c.upgrade()
        r = await c.send(`EHLO ${helo}`)
      }
      r = await c.send(`MAIL FROM:<${s.from}>${(s.mailParams ?? []).map((p) => ' ' + p).join('')}`)
      if (!ok(r)) return r
      for (const to of s.to) if (!ok((r = await c.send(`RCPT TO:<${to}>`)))) return r
      r = await c.send('DATA')
      if (!/^354/.test(r)) return r
      const body = s.data.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..')
      return c.send(`${body.endsWith('\r\n') ? body : body + '\r\n'}.`)
    }
    const reply = await steps()
    await c.send('QUIT').catch(() => undefined)
    return { reply, accepted: ok(reply) }
  } finally {
    c.end()
  }
}
