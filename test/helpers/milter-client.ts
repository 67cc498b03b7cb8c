/**
 * The MTA side of the milter protocol, for tests and benchmarks: it offers
 * what Postfix 3.7 offers, then sends each event the way Postfix does —
 * macros first, events negotiated away skipped, events without a reply
 * (NR_x) buffered and written together with the next event that waits for a
 * reply. It reuses the codec in milter/wire, in the other direction.
 */
import * as net from 'node:net'
import { ALL_ACTIONS, ALL_PROTOCOL_FLAGS, Cmd, Proto } from '../../milter/wire/codes'
import { ResponseDecoder } from '../../milter/wire/decode'
import { encodeCommand } from '../../milter/wire/encode'
import type { MacroPairs, MilterCommand, MilterResponse } from '../../milter/wire/types'

/** What Postfix 3.7 offers (seen on the wire): version 6, all actions, all protocol flags. */
export const POSTFIX_OFFER = { version: 6, actions: ALL_ACTIONS, protocol: ALL_PROTOCOL_FLAGS }

export type Negotiation = Extract<MilterResponse, { type: 'optneg' }>

/** Replies that end an event (everything else at end of message is a modification). */
const FINAL = new Set([
  'continue',
  'accept',
  'reject',
  'tempfail',
  'discard',
  'replyCode',
  'shutdown',
  'connectionFailure',
  'skip',
])

type EventType = Exclude<MilterCommand['type'], 'optneg' | 'macro' | 'abort' | 'quit' | 'quitNewConnection'>

/** Flags that switch an event off (NO_x) and that say "no reply" (NR_x). */
const EVENT_FLAGS: Record<EventType, [not: number, noReply: number]> = {
  connect: [Proto.noConnect, Proto.noReplyConnect],
  helo: [Proto.noHelo, Proto.noReplyHelo],
  mail: [Proto.noMail, Proto.noReplyMail],
  rcpt: [Proto.noRcpt, Proto.noReplyRcpt],
  data: [Proto.noData, Proto.noReplyData],
  header: [Proto.noHeaders, Proto.noReplyHeader],
  eoh: [Proto.noEoh, Proto.noReplyEoh],
  body: [Proto.noBody, Proto.noReplyBody],
  unknown: [Proto.noUnknown, Proto.noReplyUnknown],
  endOfMessage: [0, 0],
}

export interface EventResult {
  /** False when the event was negotiated away (only its macros were sent). */
  sent: boolean
  /** Modifications (end of message only) followed by the final reply; empty under NR_x. */
  responses: MilterResponse[]
}

export class MilterClient {
  negotiation?: Negotiation
  private readonly decoder = new ResponseDecoder(16 * 1024 * 1024)
  private readonly received: MilterResponse[] = []
  private waiter?: () => void
  private pending: Buffer[] = []
  private ended = false
  private error?: Error

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      try {
        this.received.push(...this.decoder.push(chunk))
      } catch (e) {
        this.error = e as Error
      }
      this.wake()
    })
    socket.on('error', (e) => {
      this.error = e
      this.wake()
    })
    socket.on('close', () => {
      this.ended = true
      this.wake()
    })
  }

  /** Connects to "inet:HOST:PORT", "unix:PATH" or a port on 127.0.0.1. */
  static async connect(target: string | number): Promise<MilterClient> {
    const opts: net.NetConnectOpts =
      typeof target === 'number'
        ? { port: target, host: '127.0.0.1' }
        : target.startsWith('unix:')
          ? { path: target.slice(5) }
          : { host: target.split(':')[1]!, port: Number(target.split(':')[2]) }
    const socket = net.connect(opts)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new MilterClient(socket)
  }

  private wake(): void {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }

  /** True once the milter closed the connection. */
  get closed(): boolean {
    return this.ended
  }

  async negotiate(offer = POSTFIX_OFFER): Promise<Negotiation> {
    this.send({ type: 'optneg', ...offer })
    const r = await this.next()
    if (r.type !== 'optneg') throw new Error(`expected an OPTNEG reply, got ${r.type}`)
    this.negotiation = r
    return r
  }

  /** Whether the milter asked not to get this event, or to get it without replying. */
  isSkipped(event: EventType): boolean {
    return (this.negotiation!.protocol & EVENT_FLAGS[event][0]) !== 0
  }

  expectsReply(event: EventType): boolean {
    return (this.negotiation!.protocol & EVENT_FLAGS[event][1]) === 0
  }

  /** Sends an event as Postfix would: its macros always, the event unless negotiated away. */
  async event(cmd: Extract<MilterCommand, { type: EventType }>, macros?: MacroPairs): Promise<EventResult> {
    if (macros) this.queue({ type: 'macro', command: Cmd[cmd.type], macros })
    if (this.isSkipped(cmd.type)) return { sent: false, responses: [] }
    this.queue(cmd)
    if (!this.expectsReply(cmd.type)) return { sent: true, responses: [] }
    this.flush()
    return { sent: true, responses: await this.untilFinal() }
  }

  /** Buffers a frame (Postfix's VSTREAM); flush() writes everything buffered at once. */
  queue(cmd: MilterCommand): void {
    this.pending.push(encodeCommand(cmd))
  }

  flush(): void {
    if (this.pending.length === 0) return
    this.socket.write(this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending))
    this.pending = []
  }

  /** Sends one frame now. */
  send(cmd: MilterCommand): void {
    this.queue(cmd)
    this.flush()
  }

  sendRaw(bytes: Buffer): void {
    this.flush()
    this.socket.write(bytes)
  }

  /** The next response (progress included); throws if the milter closed or sent garbage. */
  async next(timeoutMs = 10000): Promise<MilterResponse> {
    const deadline = Date.now() + timeoutMs
    while (this.received.length === 0) {
      if (this.error) throw this.error
      if (this.ended) throw new Error('milter closed the connection')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no milter response within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiter = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
    return this.received.shift()!
  }

  /** Responses up to and including the final one, skipping SMFIR_PROGRESS. */
  async untilFinal(timeoutMs = 10000): Promise<MilterResponse[]> {
    const out: MilterResponse[] = []
    for (;;) {
      const r = await this.next(timeoutMs)
      if (r.type === 'progress') continue
      out.push(r)
      if (FINAL.has(r.type)) return out
    }
  }

  /** Resolves when the milter closes the connection (or after timeoutMs, rejecting). */
  async waitClosed(timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error(`milter did not close within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20)
        this.waiter = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
  }

  /** QUIT and close. */
  async quit(): Promise<void> {
    if (!this.ended) this.send({ type: 'quit' })
    this.socket.end()
    await this.waitClosed().catch(() => this.socket.destroy())
  }

  destroy(): void {
    this.socket.destroy()
  }
}

// ---------------------------------------------------------------- one whole transaction

export interface TlsMacros {
  version: string
  cipher: string
  bits?: number
  certSubject?: string
  certIssuer?: string
}

export interface TransactionSpec {
  client?: { host: string; address: string; port?: number }
  helo?: string
  /** TLS facts as Postfix sends them in the HELO macros after STARTTLS; absent = plaintext. */
  tls?: TlsMacros
  /** MAIL argv: sender as sent (`<a@b>`), then ESMTP parameters. */
  mail: string[]
  rcpt: string[][]
  headers: Array<[name: string, value: string]>
  body: Buffer | string
  queueId?: string
}

export type TransactionStep =
  'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'header' | 'eoh' | 'body' | 'eom'

export interface TransactionResult {
  /** Where the milter gave its decision (the first reply that was not continue, or eom). */
  step: TransactionStep
  final: MilterResponse
  modifications: MilterResponse[]
}

export function tlsMacroPairs(tls: TlsMacros | undefined): MacroPairs {
  if (!tls) return []
  const pairs: MacroPairs = [
    ['{tls_version}', tls.version],
    ['{cipher}', tls.cipher],
  ]
  if (tls.bits !== undefined) pairs.push(['{cipher_bits}', String(tls.bits)])
  if (tls.certSubject) pairs.push(['{cert_subject}', tls.certSubject])
  if (tls.certIssuer) pairs.push(['{cert_issuer}', tls.certIssuer])
  return pairs
}

function decided(step: TransactionStep, r: EventResult): TransactionResult | undefined {
  const final = r.responses[r.responses.length - 1]
  if (!final || final.type === 'continue' || final.type === 'skip') return undefined
  return { step, final, modifications: r.responses.slice(0, -1) }
}

/** The body in chunks of at most 65535 bytes (MILTER_CHUNK_SIZE), as Postfix sends it. */
function chunks(body: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < body.length; at += 65535) out.push(body.subarray(at, at + 65535))
  return out
}

/**
 * Drives one SMTP session's worth of milter events (after negotiation), in
 * Postfix's order and with Postfix's default macros, and returns where and
 * how the milter decided.
 */
export async function runTransaction(c: MilterClient, spec: TransactionSpec): Promise<TransactionResult> {
  const client = spec.client ?? { host: 'client.example.test', address: '192.0.2.10', port: 40000 }
  const qid: MacroPairs = [['i', spec.queueId ?? '4ABC123']]
  const steps: Array<[TransactionStep, () => Promise<EventResult>]> = [
    [
      'connect',
      () =>
        c.event(
          {
            type: 'connect',
            host: client.host,
            family: 'inet4',
            port: client.port ?? 40000,
            address: client.address,
          },
          [
            ['j', 'mta.example.test'],
            ['{daemon_name}', 'mta.example.test'],
            ['v', 'Postfix 3.7.11'],
          ],
        ),
    ],
    [
      'helo',
      () => c.event({ type: 'helo', name: spec.helo ?? 'client.example.test' }, tlsMacroPairs(spec.tls)),
    ],
    [
      'mail',
      () =>
        c.event({ type: 'mail', args: spec.mail }, [['{mail_addr}', spec.mail[0]!.replace(/^<|>$/g, '')]]),
    ],
    ...spec.rcpt.map((args): [TransactionStep, () => Promise<EventResult>] => [
      'rcpt',
      () => c.event({ type: 'rcpt', args }, [['{rcpt_addr}', args[0]!.replace(/^<|>$/g, '')]]),
    ]),
    ['data', () => c.event({ type: 'data' }, qid)],
    ...spec.headers.map(([name, value]): [TransactionStep, () => Promise<EventResult>] => [
      'header',
      () => c.event({ type: 'header', name, value }, qid),
    ]),
    ['eoh', () => c.event({ type: 'eoh' }, qid)],
    ...chunks(Buffer.from(spec.body)).map((chunk): [TransactionStep, () => Promise<EventResult>] => [
      'body',
      () => c.event({ type: 'body', chunk }, qid),
    ]),
  ]
  for (const [step, run] of steps) {
    const d = decided(step, await run())
    if (d) return d
  }
  const eom = await c.event({ type: 'endOfMessage', chunk: Buffer.alloc(0) }, qid)
  return {
    step: 'eom',
    final: eom.responses[eom.responses.length - 1]!,
    modifications: eom.responses.slice(0, -1),
  }
}

/**
 * Splits an RFC 5322 message into header fields and body the way Postfix
 * hands them to a milter: one leading space of each value dropped, folded
 * lines joined with LF, body with CRLF line ends.
 */
export function splitMessage(raw: string | Buffer): { headers: Array<[string, string]>; body: Buffer } {
  const text = Buffer.from(raw).toString('latin1').replace(/\r?\n/g, '\r\n')
  const end = text.indexOf('\r\n\r\n')
  const head = end < 0 ? text : text.slice(0, end)
  const body = end < 0 ? '' : text.slice(end + 4)
  const headers: Array<[string, string]> = []
  for (const line of head.split('\r\n')) {
    if (/^[ \t]/.test(line) && headers.length) headers[headers.length - 1]![1] += `\n${line}`
    else if (line.includes(':')) {
      const i = line.indexOf(':')
      headers.push([line.slice(0, i), line.slice(i + 1).replace(/^ /, '')])
    }
  }
  const utf8 = (s: string) => Buffer.from(s, 'latin1').toString('utf8')
  return { headers: headers.map(([n, v]) => [utf8(n), utf8(v)]), body: Buffer.from(body, 'latin1') }
}
