/**
 * One DNS exchange with one server over UDP or TCP (RFC 1035 §4.2, RFC 7766).
 * UDP uses a fresh connected socket per query (a random source port picked by
 * the kernel, and only the server's replies are delivered); TCP frames each
 * message with a two-byte length. Both stop when SIGNAL aborts.
 */
import * as dgram from 'node:dgram'
import * as net from 'node:net'
import { LinksecError } from '../errors'
import { judgeReply, malformed, type Expected, type Judged } from './dns-wire'

export interface ServerAddress {
  host: string
  port: number
}

type Reply = Extract<Judged, { kind: 'reply' }>

/** The largest DNS message over TCP (the length prefix is 16 bits). */
const MAX_TCP_MESSAGE = 65535

function networkError(server: ServerAddress, cause: unknown): LinksecError {
  const why = cause instanceof Error ? cause.message : String(cause)
  return new LinksecError('LINKSEC_DNS_NETWORK', `DNS server ${label(server)} unreachable: ${why}`, { cause })
}

export function timeoutError(server: ServerAddress | undefined, ms?: number): LinksecError {
  const who = server ? ` from ${label(server)}` : ''
  return new LinksecError('LINKSEC_DNS_TIMEOUT', `no DNS answer${who}${ms ? ` within ${ms} ms` : ''}`)
}

export function label(s: ServerAddress): string {
  return net.isIPv6(s.host) ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`
}

/**
 * Runs BODY with settle callbacks that fire once, and rejects with a
 * timeout when SIGNAL aborts; CLEANUP always runs.
 */
function exchange<T>(
  server: ServerAddress,
  signal: AbortSignal,
  body: (ok: (v: T) => void, fail: (e: unknown) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(timeoutError(server))
    let cleanup = () => {}
    let done = false
    const settle = (fn: () => void) => {
      if (done) return
      done = true
      signal.removeEventListener('abort', onAbort)
      cleanup()
      fn()
    }
    const onAbort = () => settle(() => reject(timeoutError(server)))
    signal.addEventListener('abort', onAbort)
    cleanup = body(
      (v) => settle(() => resolve(v)),
      (e) => settle(() => reject(e instanceof Error ? e : new Error(String(e)))),
    )
  })
}

export function udpExchange(
  server: ServerAddress,
  query: Buffer,
  expected: Expected,
  signal: AbortSignal,
  maxBytes: number,
  retransmitMs: number,
): Promise<Reply> {
  return exchange<Reply>(server, signal, (ok, fail) => {
    const sock = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4')
    sock.on('error', (e) => fail(networkError(server, e)))
    sock.on('message', (msg) => {
      try {
        if (msg.length > maxBytes) throw malformed(`reply of ${msg.length} bytes exceeds ${maxBytes}`)
        const judged = judgeReply(msg, expected)
        if (judged.kind === 'reply') ok(judged)
        // Anything else is someone else's packet (or a spoof): keep waiting.
      } catch (e) {
        fail(e)
      }
    })
    const send = () => sock.send(query, (e) => e && fail(networkError(server, e)))
    // UDP may lose the query or the reply: send it once more halfway through (same id).
    const again = setTimeout(send, retransmitMs)
    sock.connect(server.port, server.host, send)
    return () => {
      clearTimeout(again)
      try {
        sock.close()
      } catch {
        // already closed after an error
      }
    }
  })
}

export function tcpExchange(
  server: ServerAddress,
  query: Buffer,
  expected: Expected,
  signal: AbortSignal,
  maxBytes: number,
): Promise<Reply> {
  return exchange<Reply>(server, signal, (ok, fail) => {
    const sock = net.connect({ host: server.host, port: server.port })
    let buf = Buffer.alloc(0)
    sock.on('error', (e) => fail(networkError(server, e)))
    sock.on('close', () => fail(networkError(server, 'connection closed before a full reply')))
    sock.on('connect', () => {
      const len = Buffer.alloc(2)
      len.writeUInt16BE(query.length)
      sock.write(Buffer.concat([len, query]))
    })
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      try {
        const reply = takeTcpReply(buf, expected, Math.min(maxBytes, MAX_TCP_MESSAGE))
        if (reply) ok(reply)
      } catch (e) {
        fail(e)
      }
    })
    return () => sock.destroy()
  })
}

/** The reply in BUF once its length prefix is satisfied; on TCP anything but our answer is malformed. */
function takeTcpReply(buf: Buffer, expected: Expected, maxBytes: number): Reply | undefined {
  if (buf.length < 2) return undefined
  const len = buf.readUInt16BE(0)
  if (len > maxBytes) throw malformed(`TCP reply of ${len} bytes exceeds ${maxBytes}`)
  if (buf.length < 2 + len) return undefined
  const judged = judgeReply(buf.subarray(2, 2 + len), expected)
  if (judged.kind !== 'reply') throw malformed(`TCP reply ignored: ${judged.why}`)
  return judged
}
