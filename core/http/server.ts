/**
 * The HTTP listener of `linksec serve`: /metrics, /healthz,
 * /v1/recipients/<address> (loopback by default) and WKD on `[http] listen` (default 127.0.0.1:9464). It is small on purpose:
 * GET and HEAD only, capped headers, and timeouts so a slow or idle client
 * cannot hold a socket. Timeouts alone do not stop slowloris (an attacker
 * re-opens as fast as sockets time out), so the connection cap evicts: when
 * it is reached, the oldest connection that is not being served (still
 * sending its request, or idle between keep-alive requests) is closed to
 * make room, and a new connection is refused only when every one is busy
 * with a request. /healthz and /metrics thus stay reachable under 256+
 * half-open requests.
 */
import * as http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { describeError } from '../errors'
import type { Runtime } from '../runtime'
import type { Service } from '../service'
import { healthOf } from './health'
import { listenOn } from '../net/listen'
import { settleWithin } from '../net/deadline'
import { formatHostPort, parseHostPort } from './listen'
import { createRouter, recipientsFor, sendText, type RouteOptions, type WkdHandler } from './routes'
import { loadWkdHandler } from './wkd-loader'

export type { WkdHandler, MetricsSource } from './routes'

/** Limits of the listener; tests may lower them. */
const HTTP_LIMITS = {
  maxHeaderBytes: 8 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  /** A socket with no traffic for this long is closed. */
  idleTimeoutMs: 30_000,
  maxConnections: 256,
  closeGraceMs: 2_000,
}

export interface HttpServiceOptions extends Omit<RouteOptions, 'wkdHandler'> {
  /** WKD paths; default: core/http/wkd.ts when `[http] wkd` is on and it is built; null = none. */
  wkdHandler?: WkdHandler | null
  /** Overrides `[http] listen`. */
  listen?: string
  limits?: Partial<typeof HTTP_LIMITS>
}

export interface HttpService extends Service {
  readonly port: number
}

export async function startHttpService(rt: Runtime, opts: HttpServiceOptions = {}): Promise<HttpService> {
  const limits = { ...HTTP_LIMITS, ...opts.limits }
  const wkdHandler = opts.wkdHandler === undefined ? loadWkdHandler(rt) : (opts.wkdHandler ?? undefined)
  const recipients = recipientsFor(rt, { recipients: opts.recipients })
  const server = createServer(rt, { ...opts, wkdHandler, recipients: recipients ?? null }, limits)
  const wanted = parseHostPort(opts.listen ?? rt.config.http.listen)
  await listenOn(server, { kind: 'inet', ...wanted }, { service: 'http', key: '[http] listen' })
  const port = (server.address() as AddressInfo).port
  const address = formatHostPort({ host: wanted.host, port })
  const service: HttpService = {
    name: 'http',
    address,
    port,
    close: (graceMs = limits.closeGraceMs) => closeServer(rt, server, graceMs),
  }
  healthOf(rt).add(service)
  rt.log.info('http listening', {
    address,
    paths: [
      '/metrics',
      '/healthz',
      ...(recipients ? ['/v1/recipients/'] : []),
      ...(wkdHandler ? ['WKD'] : []),
    ],
  })
  return service
}

function createServer(rt: Runtime, opts: RouteOptions, limits: typeof HTTP_LIMITS): http.Server {
  const route = createRouter(rt, opts)
  const server = http.createServer({ maxHeaderSize: limits.maxHeaderBytes }, (req, res) => {
    void handle(rt, route, req, res)
  })
  server.headersTimeout = limits.headersTimeoutMs
  server.requestTimeout = limits.requestTimeoutMs
  server.keepAliveTimeout = limits.keepAliveTimeoutMs
  evictSlowConnections(server, limits.maxConnections)
  server.setTimeout(limits.idleTimeoutMs, (socket: Socket) => socket.destroy())
  server.on('clientError', (err, socket) => rejectBadRequest(err, socket))
  return server
}

/** Holds the connection cap by evicting the oldest connection not serving a request. */
function evictSlowConnections(server: http.Server, max: number): void {
  // Insertion order = oldest first; a socket re-enters at the end when its response is done.
  const waiting = new Set<Socket>()
  let open = 0
  server.on('connection', (socket: Socket) => {
    open++
    socket.once('close', () => {
      open--
      waiting.delete(socket)
    })
    if (open > max) {
      const oldest = waiting.values().next().value
      if (oldest) oldest.destroy()
      else return void socket.destroy()
    }
    waiting.add(socket)
  })
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket
    waiting.delete(socket)
    res.once('finish', () => {
      if (!socket.destroyed) waiting.add(socket)
    })
  })
}

async function handle(
  rt: Runtime,
  route: ReturnType<typeof createRouter>,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return sendText(res, 405, 'only GET and HEAD are served here\n', { Allow: 'GET, HEAD' })
    if (!(await route(req, res))) sendText(res, 404, 'not found; try /metrics or /healthz\n')
  } catch (e) {
    rt.log.error('http request failed', { path: req.url, error: describeError(e) })
    if (!res.headersSent) sendText(res, 500, 'internal error; see the linksec log\n')
    else res.destroy()
  }
}

/** Oversized headers get 431, anything unparsable 400; then the socket closes. */
function rejectBadRequest(err: Error & { code?: string }, socket: import('node:stream').Duplex): void {
  if (!socket.writable) return void socket.destroy()
  const status =
    err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
}

/** Marks the process as shutting down (/healthz 503), stops accepting, then closes what is left after graceMs. */
async function closeServer(rt: Runtime, server: http.Server, graceMs: number): Promise<void> {
  healthOf(rt).beginShutdown()
  healthOf(rt).remove('http')
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeIdleConnections()
  await settleWithin(closed, graceMs, () => undefined)
  server.closeAllConnections()
  await closed
}
