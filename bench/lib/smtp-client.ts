/**
 * A small SMTP client that times each transaction: connect, EHLO, MAIL,
 * RCPT, DATA, message, "." until the 250 reply, then QUIT. That span is what
 * a sending server waits for per message, so its p50/p99 minus the same
 * figure without a milter is the latency a milter adds.
 */
import * as net from 'node:net'
import { performance } from 'node:perf_hooks'

export interface Envelope {
  helo: string
  from: string
  to: string
}

/** Reads SMTP replies (possibly multi-line) from a socket, one at a time. */
class ReplyReader {
  private buffer = ''
  private waiting: ((line: string) => void) | undefined
  private failed: Error | undefined
  private rejectWaiting: ((err: Error) => void) | undefined

  constructor(socket: net.Socket) {
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      this.buffer += chunk
      this.deliver()
    })
    const fail = (err: Error) => {
      this.failed = err
      this.rejectWaiting?.(err)
    }
    socket.on('error', fail)
    socket.on('close', () => fail(new Error('connection closed by server')))
  }

  next(): Promise<string> {
    if (this.failed) return Promise.reject(this.failed)
    return new Promise((resolve, reject) => {
      this.waiting = resolve
      this.rejectWaiting = reject
      this.deliver()
    })
  }

  /** A complete reply ends with a line whose 4th character is a space. */
  private deliver(): void {
    if (!this.waiting) return
    const m = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(this.buffer)
    if (!m) return
    const end = m.index + m[0].length
    const reply = this.buffer.slice(0, end)
    this.buffer = this.buffer.slice(end)
    const done = this.waiting
    this.waiting = undefined
    this.rejectWaiting = undefined
    done(reply)
  }
}

function connect(port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`SMTP timeout after ${timeoutMs} ms`)))
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

async function expect(reader: ReplyReader, code: string, step: string): Promise<void> {
  const reply = await reader.next()
  if (!reply.startsWith(code)) throw new Error(`${step}: expected ${code}, got ${reply.trim()}`)
}

/** SMTP-ready DATA payload: CRLF lines, dot-stuffed, ending in CRLF.CRLF. */
export function dataPayload(message: string): string {
  const lines = message.replace(/\r\n/g, '\n').replace(/\n$/, '').split('\n')
  return lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n') + '\r\n.\r\n'
}

/** One whole SMTP session delivering one message; resolves to the ms until "250" after the dot. */
export async function timedTransaction(port: number, env: Envelope, payload: string, timeoutMs = 30_000) {
  const t0 = performance.now()
  const socket = await connect(port, timeoutMs)
  const reader = new ReplyReader(socket)
  try {
    await expect(reader, '220', 'greeting')
    const steps: Array<[string, string]> = [
      [`EHLO ${env.helo}`, '250'],
      [`MAIL FROM:<${env.from}>`, '250'],
      [`RCPT TO:<${env.to}>`, '250'],
      ['DATA', '354'],
    ]
    for (const [cmd, code] of steps) {
      socket.write(`${cmd}\r\n`)
      await expect(reader, code, cmd)
    }
    socket.write(payload)
    await expect(reader, '250', 'end of data')
    const ms = performance.now() - t0
    socket.write('QUIT\r\n')
    await reader.next().catch(() => undefined)
    return ms
  } finally {
    socket.destroy()
  }
}

export interface LatencySpec {
  port: number
  count: number
  sessions: number
  envelope: Envelope
  payload: string
  signal?: AbortSignal
}

/** `count` transactions over `sessions` parallel workers; returns each transaction's ms. */
export async function measureLatencies(spec: LatencySpec): Promise<number[]> {
  const times: number[] = []
  let next = 0
  const worker = async () => {
    while (next < spec.count && !spec.signal?.aborted) {
      next++
      times.push(await timedTransaction(spec.port, spec.envelope, spec.payload))
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, spec.sessions) }, worker))
  return times
}
