/**
 * The milter listener: `inet:HOST:PORT` or `unix:PATH`, one MilterConnection
 * per socket, a cap on concurrent sessions, and a graceful close that lets
 * messages in flight finish (SIGTERM) before dropping what is left.
 */
import * as net from 'node:net'
import { listenOn } from '../core/net/listen'
import { parseEndpoint, type Service } from '../core/service'
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
  // Postfix's smtpd (user postfix) must be able to connect; guard access with the directory's permissions.
  const address = await listenOn(server, endpoint, {
    service: 'milter',
    key: '[milter] listen',
    socketMode: 0o666,
  })
  return { name: 'milter', address, close: closer(server, connections) }
}

function refuse(rt: Runtime, socket: net.Socket): void {
  rt.metrics.milterProtocolErrors.inc({ reason: 'too_many_sessions' })
  rt.log.warn('milter session refused: [milter] max_sessions reached', {
    max_sessions: rt.config.milter.max_sessions,
  })
  socket.destroy()
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
