/**
 * The milter listener: `inet:HOST:PORT` or `unix:PATH`, one MilterConnection
 * per socket, a cap on concurrent sessions, and a graceful close that lets
 * messages in flight finish (SIGTERM) before dropping what is left.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import { formatEndpoint, parseEndpoint, type Endpoint, type Service } from '../core/service'
import type { Runtime } from '../core/runtime'
import { createMilterApp } from './app'
import { MilterConnection } from './connection'
import type { MilterHandler } from './session'

export interface MilterServiceOptions {
  /** Defaults to the linksec app with the configured message policies. */
  handler?: MilterHandler
  /** Overrides [milter] listen, e.g. "inet:127.0.0.1:0" in tests. */
  listen?: string
}

export async function startMilterService(rt: Runtime, opts: MilterServiceOptions = {}): Promise<Service> {
  const endpoint = parseEndpoint(opts.listen ?? rt.config.milter.listen)
  const handler =
    opts.handler ?? createMilterApp(rt, { transport: endpoint.kind === 'unix' ? 'unix' : 'inet' })
  const connections = new Set<MilterConnection>()
  let nextId = 1
  const server = net.createServer((socket) => {
    if (connections.size >= rt.config.milter.max_sessions) return refuse(rt, socket)
    rt.metrics.milterSessions.inc()
    const conn = new MilterConnection(rt, socket, handler, nextId++, (c) => {
      connections.delete(c)
      rt.metrics.milterSessions.dec()
    })
    connections.add(conn)
  })
  const address = await listen(server, endpoint)
  return { name: 'milter', address, close: closer(server, connections) }
}

function refuse(rt: Runtime, socket: net.Socket): void {
  rt.metrics.milterProtocolErrors.inc({ reason: 'too_many_sessions' })
  rt.log.warn('milter session refused: [milter] max_sessions reached', {
    max_sessions: rt.config.milter.max_sessions,
  })
  socket.destroy()
}

async function listen(server: net.Server, e: Endpoint): Promise<string> {
  if (e.kind === 'unix') await removeStaleSocket(e.path)
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `milter cannot listen on ${formatEndpoint(e)}: ${err.code ?? err.message}; set [milter] listen to a free address`,
        ),
      )
    server.once('error', onError)
    const done = () => {
      server.off('error', onError)
      resolve()
    }
    if (e.kind === 'unix') server.listen(e.path, done)
    else server.listen({ host: e.host, port: e.port }, done)
  })
  // Postfix's smtpd (user postfix) must be able to connect; guard access with the directory's permissions.
  if (e.kind === 'unix') fs.chmodSync(e.path, 0o666)
  const a = server.address()
  return e.kind === 'unix' || a === null || typeof a === 'string'
    ? formatEndpoint(e)
    : formatEndpoint({ kind: 'inet', host: a.address, port: a.port })
}

/** A socket file left by a crashed run blocks listen; one with a live listener is not ours to take. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!fs.existsSync(path)) return
  if (!fs.statSync(path).isSocket())
    throw new Error(`milter cannot listen on unix:${path}: a file that is not a socket is there`)
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (live) throw new Error(`milter cannot listen on unix:${path}: another process is listening there`)
  fs.unlinkSync(path)
}

function closer(server: net.Server, connections: Set<MilterConnection>): (graceMs?: number) => Promise<void> {
  let closing: Promise<void> | undefined
  return (graceMs = 0) => {
    closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        for (const c of connections) c.destroy()
      }, graceMs)
      // Called once the listener is closed and every connection has ended.
      server.close(() => {
        clearTimeout(timer)
        resolve()
      })
      for (const c of connections) c.drain()
    })
    return closing
  }
}
