/**
 * An HTTPS server on 127.0.0.1 (random port) for tests. It presents, for
 * whatever name the client sends in SNI, a leaf from the test CA made on
 * demand, so one server serves every test domain:
 *
 *   const web = await startHttpsServer({
 *     'mta-sts.example.test/.well-known/mta-sts.txt': { body: 'version: STSv1\n...' },
 *     '/anything-on-any-host': { status: 404 },
 *     '/slow': { fault: 'drip', dripMs: 50 },
 *   })
 *   web.port                                // [net] https_port
 *   web.route('/moved', redirect('https://elsewhere.test/x'))
 *   web.certFault('bad.example.test', 'wrong-name')   // or 'unknown-ca'
 *   web.requests                            // [{ host, path, method, servername }]
 *   await web.prepare(['mta-sts.example.test'])        // make certificates ahead of the first handshake
 *   await web.close()
 *
 * Route keys are 'host/path' (matched first) or '/path' (any host); the path
 * is matched without its query string. A route is { status, headers, body,
 * fault } or a (req, res) handler. Faults: 'hang' (headers never come),
 * 'drip' (one body byte per dripMs), 'oversized' (`bytes` of body, with a
 * Content-Length unless declareLength is false), 'reset' (socket destroyed).
 */
import * as http from 'node:http'
import * as https from 'node:https'
import type * as net from 'node:net'
import * as tls from 'node:tls'
import { createCa, testCa, type TestCa } from './test-ca'

export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void

export interface RouteSpec {
  status?: number
  headers?: Record<string, string>
  body?: string | Buffer
  fault?: 'hang' | 'drip' | 'oversized' | 'reset'
  /** drip: milliseconds between body bytes (default 100). */
  dripMs?: number
  /** oversized: body size in bytes (default 1 MiB). */
  bytes?: number
  /** oversized: send Content-Length (default true); false streams it chunked. */
  declareLength?: boolean
}

export type Route = RouteSpec | RouteHandler
export type CertFault = 'wrong-name' | 'unknown-ca'

export interface HttpsRequestLog {
  host: string
  path: string
  method: string
  servername: string | undefined
}

export interface TestHttpsServer {
  readonly host: string
  readonly port: number
  readonly ca: TestCa
  readonly requests: HttpsRequestLog[]
  route(key: string, route: Route | undefined): void
  certFault(host: string, fault: CertFault | undefined): void
  /** Issues the certificates for NAMES now (else they are made at the first handshake). */
  prepare(names: string[]): Promise<void>
  close(): Promise<void>
}

/** A redirect route (302 by default). */
export function redirect(location: string, status = 302): RouteSpec {
  return { status, headers: { location }, body: '' }
}

let untrusted: TestCa | undefined

function serve(spec: RouteSpec, res: http.ServerResponse, timers: Set<NodeJS.Timeout>): void {
  const headers = { 'content-type': 'text/plain', ...(spec.headers ?? {}) }
  switch (spec.fault) {
    case 'hang':
      return // never answer; close() destroys the socket
    case 'reset':
      res.socket?.destroy()
      return
    case 'oversized': {
      const body = Buffer.alloc(spec.bytes ?? 1024 * 1024, 'x')
      const len = spec.declareLength === false ? {} : { 'content-length': String(body.length) }
      res.writeHead(spec.status ?? 200, { ...headers, ...len })
      res.end(body)
      return
    }
    case 'drip':
      return drip(spec, res, headers, timers)
  }
  const body = spec.body ?? ''
  res.writeHead(spec.status ?? 200, { ...headers, 'content-length': String(Buffer.byteLength(body)) })
  res.end(body)
}

function drip(
  spec: RouteSpec,
  res: http.ServerResponse,
  headers: Record<string, string>,
  timers: Set<NodeJS.Timeout>,
): void {
  const body = Buffer.from(spec.body ?? 'x'.repeat(10000))
  res.writeHead(spec.status ?? 200, headers)
  let i = 0
  const timer = setInterval(() => {
    if (i >= body.length) {
      clearInterval(timer)
      timers.delete(timer)
      res.end()
      return
    }
    res.write(body.subarray(i, i + 1))
    i++
  }, spec.dripMs ?? 100)
  timers.add(timer)
  res.on('close', () => {
    clearInterval(timer)
    timers.delete(timer)
  })
}

export async function startHttpsServer(
  routes: Record<string, Route> = {},
  opts: { ca?: TestCa } = {},
): Promise<TestHttpsServer> {
  const ca = opts.ca ?? testCa()
  const table = new Map<string, Route>(Object.entries(routes).map(([k, v]) => [k.toLowerCase(), v]))
  const faults = new Map<string, CertFault>()
  const requests: HttpsRequestLog[] = []
  const timers = new Set<NodeJS.Timeout>()
  const sockets = new Set<net.Socket>()

  async function contextFor(servername: string): Promise<tls.SecureContext> {
    const fault = faults.get(servername.toLowerCase())
    const leaf =
      fault === 'wrong-name'
        ? await ca.leaf(['wrong-name.invalid'])
        : fault === 'unknown-ca'
          ? await (untrusted ??= createCa('linksec untrusted test CA')).leaf([servername])
          : await ca.leaf([servername])
    return tls.createSecureContext({ cert: leaf.cert, key: leaf.key })
  }

  const fallback = await ca.leaf(['localhost'])
  const server = https.createServer({
    cert: fallback.cert,
    key: fallback.key,
    SNICallback: (name, cb) => {
      contextFor(name).then(
        (ctx) => cb(null, ctx),
        (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
      )
    },
  })
  server.on('connection', (s: net.Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase()
    const pathOnly = (req.url ?? '/').split('?')[0]!
    const servername = req.socket instanceof tls.TLSSocket ? req.socket.servername || undefined : undefined
    requests.push({ host, path: req.url ?? '/', method: req.method ?? 'GET', servername })
    const route = table.get(`${host}${pathOnly}`.toLowerCase()) ?? table.get(pathOnly.toLowerCase())
    if (!route) return serve({ status: 404, body: 'not found\n' }, res, timers)
    if (typeof route === 'function') return route(req, res)
    serve(route, res, timers)
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port))
  })

  return {
    host: '127.0.0.1',
    port,
    ca,
    requests,
    route(key, route) {
      if (route) table.set(key.toLowerCase(), route)
      else table.delete(key.toLowerCase())
    },
    certFault(host, fault) {
      if (fault) faults.set(host.toLowerCase(), fault)
      else faults.delete(host.toLowerCase())
    },
    async prepare(names) {
      await Promise.all(names.map((n) => contextFor(n)))
    },
    async close() {
      for (const t of timers) clearInterval(t)
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
