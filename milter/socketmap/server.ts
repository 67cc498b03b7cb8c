/**
 * `linksec serve`'s Postfix socketmap TLS-policy server (docs/architecture.md §2,
 * `socketmap:inet:127.0.0.1:8461:linksec`). Postfix keeps a connection open
 * and sends one request at a time on it (dict_sockmap.c), so each
 * connection answers in order, many requests per connection. Every request
 * ends in a reply, whatever happens: a lookup that runs past the deadline is
 * `TEMP` (it keeps running and fills the cache for the next ask), and an
 * unexpected error is `TEMP`, never a silent `NOTFOUND`.
 */
import * as net from 'node:net'
import { describeError } from '../../core/errors'
import { parseNextHop, policyResolverFor, type PolicyResolver } from '../../core/policy'
import type { Runtime } from '../../core/runtime'
import { listenOn } from '../../core/net/listen'
import { settleWithin } from '../../core/net/deadline'
import { parseEndpoint, type Service } from '../../core/service'
import { encodeNetstring, NetstringDecoder, SOCKETMAP_MAX_REPLY } from './netstring'
import { formatReply, parseRequest, policyReply, type SocketmapReply } from './tls-policy'

export interface SocketmapOptions {
  /** Default [socketmap] listen. Port 0 picks a free port (tests). */
  listen?: string
  /** Default [socketmap] name. */
  name?: string
  resolver?: PolicyResolver
  /** Longest a lookup may take before the answer is TEMP (default: below Postfix's 100 s I/O timeout). */
  deadlineMs?: number
  /** A connection idle this long is closed (Postfix closes its own after 10 s). */
  idleMs?: number
  maxConnections?: number
}

/** Requests queued on one connection before it is considered abusive and closed. */
const MAX_PENDING_PER_CONNECTION = 64

export async function startSocketmapService(rt: Runtime, opts: SocketmapOptions = {}): Promise<Service> {
  const endpoint = parseEndpoint(opts.listen ?? rt.config.socketmap.listen)
  const answer = requestAnswerer(rt, {
    name: opts.name ?? rt.config.socketmap.name,
    resolver: opts.resolver ?? policyResolverFor(rt),
    deadlineMs: opts.deadlineMs ?? defaultDeadlineMs(rt),
  })
  const sockets: Connections = new Map()
  const server = net.createServer((socket) =>
    serveConnection(rt, socket, answer, sockets, opts.idleMs ?? 120_000),
  )
  server.maxConnections = opts.maxConnections ?? 10_000
  const address = await listenOn(server, endpoint, {
    service: 'socketmap',
    key: '[socketmap] listen',
    socketMode: 0o666,
  })
  rt.log.info('socketmap listening', { address })
  let closing: Promise<void> | undefined
  return {
    name: 'socketmap',
    address,
    close: (graceMs = 5000) => (closing ??= closeServer(server, sockets, graceMs)),
  }
}

/** Each source has its own timeout; the whole lookup gets the sum, capped well under Postfix's 100 s. */
function defaultDeadlineMs(rt: Runtime): number {
  return Math.min(60_000, 3 * rt.config.resolver.timeout_ms + rt.config.net.timeout_ms)
}

type Answerer = (payload: Buffer) => Promise<SocketmapReply>
/** Open connections and how many requests each has in flight. */
type Connections = Map<net.Socket, { pending: number; closing: boolean }>

function requestAnswerer(
  rt: Runtime,
  o: { name: string; resolver: PolicyResolver; deadlineMs: number },
): Answerer {
  return async (payload) => {
    const req = parseRequest(payload)
    if (req.name !== o.name)
      return {
        status: 'PERM',
        reason: `unknown map "${req.name}"; this server answers socketmap:inet:HOST:PORT:${o.name}`,
      }
    const hop = parseNextHop(req.key)
    // An IP literal or a key that is no name has no policy domain: Postfix keeps its default.
    if (hop.kind === 'address' || hop.kind === 'invalid') return { status: 'NOTFOUND' }
    const tlsrpt = rt.config.socketmap.tlsrpt // Postfix 3.10+ reply attributes (tls-policy.ts)
    const reply = o.resolver.resolve(hop.domain).then((p) => policyReply(p, { tlsrpt }))
    // Late is TEMP: Postfix defers rather than sending with a weaker policy (docs/architecture.md §5.1).
    return settleWithin(reply, o.deadlineMs, (): SocketmapReply => ({
      status: 'TEMP',
      reason: `policy lookup for ${hop.domain} took over ${o.deadlineMs} ms`,
    }))
  }
}

function serveConnection(
  rt: Runtime,
  socket: net.Socket,
  answer: Answerer,
  sockets: Connections,
  idleMs: number,
): void {
  const state = { pending: 0, closing: false }
  sockets.set(socket, state)
  socket.setNoDelay(true)
  socket.setTimeout(idleMs, () => socket.destroy())
  socket.on('close', () => sockets.delete(socket))
  socket.on('error', () => socket.destroy())
  const decoder = new NetstringDecoder()
  let chain = Promise.resolve()
  socket.on('data', (chunk: Buffer) => {
    let payloads: Buffer[]
    try {
      payloads = decoder.push(chunk)
    } catch (e) {
      return dropConnection(rt, socket, `socketmap framing error: ${describeError(e)}`)
    }
    state.pending += payloads.length
    if (state.pending > MAX_PENDING_PER_CONNECTION)
      return dropConnection(rt, socket, 'too many requests in flight')
    for (const payload of payloads) {
      chain = chain.then(async () => {
        const reply = await safeAnswer(rt, answer, payload)
        state.pending--
        if (socket.destroyed) return
        socket.write(encodeReply(reply))
        if (state.closing && state.pending === 0) socket.end()
      })
    }
  })
}

async function safeAnswer(rt: Runtime, answer: Answerer, payload: Buffer): Promise<SocketmapReply> {
  let reply: SocketmapReply
  try {
    reply = await answer(payload)
  } catch (e) {
    // A bad request is the client's mistake (PERM); anything else must not become an accept.
    const bad = (e as { code?: string }).code === 'LINKSEC_NETSTRING'
    if (!bad) rt.log.error('socketmap lookup failed', { error: describeError(e) })
    reply = bad
      ? { status: 'PERM', reason: (e as Error).message }
      : { status: 'TEMP', reason: 'internal error' }
  }
  rt.metrics.socketmapRequests.inc({ result: reply.status.toLowerCase() })
  return reply
}

function encodeReply(r: SocketmapReply): Buffer {
  const out = encodeNetstring(formatReply(r))
  return out.length <= SOCKETMAP_MAX_REPLY
    ? out
    : encodeNetstring(formatReply({ status: 'TEMP', reason: 'policy reply exceeds the socketmap limit' }))
}

function dropConnection(rt: Runtime, socket: net.Socket, why: string): void {
  rt.metrics.socketmapRequests.inc({ result: 'protocol_error' })
  rt.log.warn('socketmap connection dropped', { reason: why, peer: socket.remoteAddress })
  socket.destroy()
}

async function closeServer(server: net.Server, sockets: Connections, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  // Idle connections end now; one with a lookup in flight ends after its reply, or after graceMs.
  for (const [socket, state] of sockets) {
    state.closing = true
    if (state.pending === 0) socket.end()
  }
  await settleWithin(closed, graceMs, () => sockets.forEach((_, s) => s.destroy()))
  await closed
}
