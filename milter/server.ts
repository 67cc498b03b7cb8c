/**
 * The milter listener: `inet:HOST:PORT` or `unix:PATH`, one MilterConnection
 * per socket, a cap on concurrent sessions, and a graceful close that lets
 * messages in flight finish (SIGTERM) before dropping what is left. When the
 * cap is reached, a connection that has not even negotiated yet (idle,
 * likely hostile) makes room for the new one; only when every session is a
 * real one is the new connection refused. Refusals are counted each and
 * logged at most once per 10 s.
 */
import * as net from 'node:net'
import { createLogLimiter } from '../core/log-limit'
import { listenOn } from '../core/net/listen'
import { settleWithin } from '../core/net/deadline'
import { parseEndpoint, type Service } from '../core/service'
import type { Runtime } from '../core/runtime'
import { createMilterApp } from './app'
import { MilterConnection, type ConnectionContext } from './connection'
import { HeldBytes, limitsFromConfig, type LimitName } from './limits'
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
  const ctx = connectionContext(rt)
  let nextId = 1
  const server = net.createServer((socket) => {
    if (connections.size >= rt.config.milter.max_sessions && !evictOne(connections))
      return refuse(rt, ctx, socket)
    rt.metrics.milterSessions.inc()
    const conn = new MilterConnection(
      rt,
      socket,
      handler,
      nextId++,
      (c) => {
        connections.delete(c)
        rt.metrics.milterSessions.dec()
      },
      ctx,
    )
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

function connectionContext(rt: Runtime): ConnectionContext {
  const logLimit = createLogLimiter()
  const onLimit = (limit: LimitName) => {
    rt.metrics.milterLimits.inc({ limit })
    logLimit(`limit:${limit}`, (extra) =>
      rt.log.warn(
        limit === 'session_time'
          ? 'milter connection refused: it did not bring a message to its end in time'
          : 'milter message refused: a memory bound was passed',
        { limit, ...extra },
      ),
    )
  }
  const held = new HeldBytes(rt.config.milter.max_held_bytes)
  return { limits: limitsFromConfig(rt.config.milter, held, onLimit), logLimit }
}

/** Closes the oldest connection that never negotiated; false if every one did. */
function evictOne(connections: Set<MilterConnection>): boolean {
  for (const c of connections) {
    if (c.negotiated) continue
    c.evict()
    return true
  }
  return false
}

function refuse(rt: Runtime, ctx: ConnectionContext, socket: net.Socket): void {
  rt.metrics.milterProtocolErrors.inc({ reason: 'too_many_sessions' })
  ctx.logLimit('too_many_sessions', (extra) =>
    rt.log.warn('milter session refused: [milter] max_sessions reached', {
      max_sessions: rt.config.milter.max_sessions,
      ...extra,
    }),
  )
  socket.destroy()
}

function closer(server: net.Server, connections: Set<MilterConnection>): (graceMs?: number) => Promise<void> {
  let closing: Promise<void> | undefined
  return (graceMs = 0) => {
    closing ??= (async () => {
      // Settles once the listener is closed and every connection has ended.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const c of connections) c.drain()
      await settleWithin(closed, graceMs, () => {
        for (const c of connections) c.destroy()
      })
      await closed
    })()
    return closing
  }
}
