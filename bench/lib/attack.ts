/**
 * The memory benchmark's "under attack" stage: hostile milter peers against
 * a fresh `linksec serve` with the default [milter] limits, one attack after
 * the other, each with a /healthz probe running beside it (every 100 ms, a
 * new connection each time) whose worst latency is reported:
 * - header flood: 20 sessions x 400 header fields of 65 KB (520 MB sent);
 * - macro flood: 50 sessions x 32 KB macros for all 256 command codes;
 * - big bodies: 40 sessions sending 10 MB bodies at once;
 * - idle connections: max_sessions TCP connections that never negotiate,
 *   and one real session through them.
 */
import * as http from 'node:http'
import * as net from 'node:net'
import { MilterClient, runTransaction, type TransactionSpec } from '../../test/helpers/milter-client'
import { encodeCommand } from '../../milter/wire/encode'
import type { MilterCommand, MilterResponse } from '../../milter/wire/types'
import { openSession } from './milter-load'
import type { RunningLinksec } from './linksec-serve'

export interface AttackResult {
  attack: string
  /** Final replies the attacking sessions got, e.g. {"552 5.3.4": 20}. */
  replies: Record<string, number>
  worstHealthzMs: number
  healthzFailures: number
}

const SMALL: TransactionSpec = {
  mail: ['<a@example.org>'],
  rcpt: [['<b@example.net>']],
  headers: [['Subject', 'x']],
  body: 'x\r\n',
}

/** Probes /healthz every 100 ms until stop() is called. */
function healthProbe(port: number) {
  let worst = 0
  let failures = 0
  let running = true
  const one = () =>
    new Promise<void>((resolve) => {
      const started = process.hrtime.bigint()
      const req = http.get(
        { host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 60_000 },
        (res) => {
          res.resume()
          res.on('end', () => {
            worst = Math.max(worst, Number(process.hrtime.bigint() - started) / 1e6)
            if (res.statusCode !== 200) failures++
            resolve()
          })
        },
      )
      req.on('error', () => {
        failures++
        resolve()
      })
      req.on('timeout', () => req.destroy())
    })
  const loop = (async () => {
    while (running) {
      await one()
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  return async () => {
    running = false
    await loop
    return { worst, failures }
  }
}

/** Writes frames with back-pressure. */
async function write(c: MilterClient, cmds: Iterable<MilterCommand>): Promise<void> {
  c.flush()
  for (const cmd of cmds) {
    if (c.closed) return
    if (!c.socket.write(encodeCommand(cmd))) await new Promise((r) => c.socket.once('drain', r))
  }
}

function label(r: MilterResponse | undefined): string {
  if (!r) return 'closed'
  return r.type === 'replyCode' ? r.text.slice(0, 9) : r.type
}

/** A session up to DATA (HELO via openSession), then `content`, then end of message; its final reply. */
async function hostileMessage(
  ls: RunningLinksec,
  n: number,
  content: () => Iterable<MilterCommand>,
): Promise<string> {
  let c: MilterClient | undefined
  try {
    c = await openSession(ls.socket, n)
    await c.event({ type: 'mail', args: ['<a@example.org>'] })
    await c.event({ type: 'rcpt', args: ['<b@example.net>'] })
    await c.event({ type: 'data' })
    await write(c, content())
    await write(c, [{ type: 'endOfMessage', chunk: Buffer.alloc(0) }])
    const out = await c.untilFinal(120_000)
    return label(out.at(-1))
  } catch {
    return 'closed'
  } finally {
    c?.destroy()
  }
}

function* headers(count: number, bytes: number): Iterable<MilterCommand> {
  const value = 'h'.repeat(bytes)
  for (let i = 0; i < count; i++) yield { type: 'header', name: `X-Flood-${i}`, value }
}

function* body(bytes: number): Iterable<MilterCommand> {
  yield { type: 'header', name: 'Subject', value: 'big' }
  const chunk = Buffer.alloc(65535, 'b')
  for (let at = 0; at < bytes; at += chunk.length) yield { type: 'body', chunk }
}

async function count(results: Promise<string>[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const r of await Promise.all(results)) out[r] = (out[r] ?? 0) + 1
  return out
}

async function macroFlood(ls: RunningLinksec, n: number): Promise<string> {
  let c: MilterClient | undefined
  try {
    c = await MilterClient.connect(ls.socket)
    await c.negotiate()
    const value = 'm'.repeat(32 * 1024)
    const macros = Array.from({ length: 256 }, (_, command): MilterCommand => ({
      type: 'macro',
      command,
      macros: [['{flood}', value]],
    }))
    await write(c, macros)
    const r = await runTransaction(c, { ...SMALL, client: { host: `m${n}`, address: '192.0.2.1' } })
    return label(r.final)
  } catch {
    return 'closed'
  } finally {
    c?.destroy()
  }
}

async function idleFlood(ls: RunningLinksec, sessions: number): Promise<Record<string, number>> {
  const idle: net.Socket[] = []
  try {
    for (let i = 0; i < sessions; i++) {
      const s = net.connect(ls.milterPort, '127.0.0.1')
      s.on('error', () => {})
      idle.push(s)
      if (i % 200 === 199) await new Promise((r) => setTimeout(r, 10))
    }
    await new Promise((r) => setTimeout(r, 3000))
    const c = await MilterClient.connect(ls.socket)
    await c.negotiate()
    const r = await runTransaction(c, SMALL)
    c.destroy()
    return { [`real session: ${label(r.final)}`]: 1 }
  } catch {
    return { 'real session: closed': 1 }
  } finally {
    for (const s of idle) s.destroy()
  }
}

export interface Attack {
  name: string
  run(ls: RunningLinksec): Promise<Record<string, number>>
}

export const ATTACKS: readonly Attack[] = [
  {
    name: 'header flood (20 sessions x 400 fields of 65 KB)',
    run: (ls) =>
      count(Array.from({ length: 20 }, (_, i) => hostileMessage(ls, i, () => headers(400, 65_000)))),
  },
  {
    name: 'macro flood (50 sessions x 256 codes x 32 KB)',
    run: (ls) => count(Array.from({ length: 50 }, (_, i) => macroFlood(ls, i))),
  },
  {
    name: 'big bodies (40 sessions x 10 MB at once)',
    run: (ls) => count(Array.from({ length: 40 }, (_, i) => hostileMessage(ls, i, () => body(10 << 20)))),
  },
  {
    name: 'idle connections (2,000 never negotiated)',
    run: (ls) => idleFlood(ls, 2000),
  },
]

/** Runs one attack with the /healthz probe beside it. */
export async function runAttack(ls: RunningLinksec, a: Attack): Promise<AttackResult> {
  const stop = healthProbe(ls.httpPort)
  const replies = await a.run(ls)
  const { worst, failures } = await stop()
  return { attack: a.name, replies, worstHealthzMs: worst, healthzFailures: failures }
}
