/**
 * Milter sessions per second over loopback with a no-op policy (one header
 * added at end of message), linksec's milter against a libmilter milter
 * (python3-milter, shared/peers/test-milter.py) run beside it in the same
 * run, plus linksec's real default policies. Each session is what Postfix
 * does per SMTP session: connect, negotiate, CONNECT, HELO, MAIL, RCPT, DATA,
 * headers, end of headers, body, end of message, QUIT — sent the way Postfix
 * sends it (NR_x events batched with the next event that waits). Goal: at
 * least 1.5x the libmilter milter. Bounded in sessions and time.
 *
 *   node dist/bench/milter.js [--quick]
 */
import { MilterClient, runTransaction, type TransactionSpec } from '../test/helpers/milter-client'
import { startTestMilter } from '../test/helpers/postfix'
import { startFrameworkMilter, type FrameworkRole } from './lib/noop-milter'
import { median, percentile, ratio } from './lib/stats'
import { runStandalone } from './lib/standalone'
import { atLeast, type BenchOptions, type BenchResult } from './lib/types'

const SPEC: TransactionSpec = {
  mail: ['<from@example.org>', 'BODY=8BITMIME'],
  rcpt: [['<to@example.net>']],
  headers: [
    ['From', '<from@example.org>'],
    ['To', '<to@example.net>'],
    ['Subject', 'bench'],
    ['Message-ID', '<bench@example.org>'],
  ],
  body: 'x'.repeat(76).concat('\r\n').repeat(26),
}

interface Round {
  sessionsPerSecond: number
  latenciesMs: number[]
}

/** Runs `total` sessions, `concurrency` at a time; every session must end in a final reply. */
async function load(
  target: string,
  total: number,
  concurrency: number,
  signal?: AbortSignal,
): Promise<Round> {
  const latencies: number[] = []
  let started = 0
  const t0 = process.hrtime.bigint()
  const worker = async () => {
    while (started < total && !signal?.aborted) {
      started++
      const s0 = process.hrtime.bigint()
      const c = await MilterClient.connect(target)
      await c.negotiate()
      const r = await runTransaction(c, SPEC)
      if (r.step !== 'eom') throw new Error(`session ended at ${r.step} with ${r.final.type}`)
      await c.quit()
      latencies.push(Number(process.hrtime.bigint() - s0) / 1e6)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  return { sessionsPerSecond: latencies.length / seconds, latenciesMs: latencies }
}

// ---------------------------------------------------------------- milters under test

interface Peer {
  name: string
  target: string
  stop(): Promise<void>
}

/** linksec's milter in a child process, so the load generator does not share its event loop. */
async function startLinksec(role: FrameworkRole): Promise<Peer> {
  const m = await startFrameworkMilter(role, 'inet:127.0.0.1:0')
  return {
    name: role === 'noop' ? 'linksec (no-op policy)' : 'linksec (default policies)',
    target: m.socket,
    stop: m.stop,
  }
}

async function startLibmilter(): Promise<Peer> {
  const m = await startTestMilter()
  return { name: 'libmilter (python3-milter)', target: m.address, stop: async () => m.stop() }
}

// ---------------------------------------------------------------- the benchmark

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const sessions = opts.quick ? 500 : 2000
  const serialSessions = opts.quick ? 50 : 200
  const rounds = opts.quick ? 1 : 3
  const concurrency = 20
  const notes: string[] = [
    `${sessions} sessions per round, ${concurrency} at a time, ${rounds} round(s), median of rounds; each milter adds one header`,
    `p50/p99: latency of one whole session under that load; serial: ${serialSessions} sessions one at a time`,
  ]
  const peers: Peer[] = []
  try {
    peers.push(await startLinksec('noop'), await startLibmilter(), await startLinksec('default'))
    const results = new Map<string, Round[]>(peers.map((p) => [p.name, []]))
    // Warm-up: the JIT of the load generator and of Node milters, and Python's imports.
    for (const p of peers) await load(p.target, 300, concurrency, opts.signal)
    for (let r = 0; r < rounds && !opts.signal?.aborted; r++) {
      for (const [i, p] of peers.entries()) {
        opts.progress((r * peers.length + i) / (rounds * peers.length + 1), `${p.name}, round ${r + 1}`)
        results.get(p.name)!.push(await load(p.target, sessions, concurrency, opts.signal))
      }
    }
    // Latency without queueing: one session at a time.
    const serial = new Map<string, number[]>()
    for (const p of peers) {
      opts.progress((rounds * peers.length) / (rounds * peers.length + 1), `${p.name}, serial latency`)
      serial.set(p.name, (await load(p.target, serialSessions, 1, opts.signal)).latenciesMs)
    }
    return summarize(peers, results, serial, notes)
  } finally {
    await Promise.all(peers.map((p) => p.stop()))
  }
}

function summarize(
  peers: Peer[],
  results: Map<string, Round[]>,
  serial: Map<string, number[]>,
  notes: string[],
): BenchResult {
  const rows = peers.map((p) => {
    const rs = results.get(p.name)!
    const all = rs.flatMap((r) => r.latenciesMs)
    return {
      milter: p.name,
      'sessions/s': Math.round(median(rs.map((r) => r.sessionsPerSecond))),
      'p50 ms': round2(percentile(all, 50)),
      'p99 ms': round2(percentile(all, 99)),
      'serial p50 ms': round2(percentile(serial.get(p.name)!, 50)),
      'serial p99 ms': round2(percentile(serial.get(p.name)!, 99)),
    }
  })
  const rate = (i: number) => rows[i]!['sessions/s']
  const vsLibmilter = ratio(rate(0), rate(1))
  return {
    name: 'milter',
    rows,
    ratios: {
      'linksec/libmilter': round2(vsLibmilter),
      'linksec-default/libmilter': round2(ratio(rate(2), rate(1))),
    },
    goals: { 'linksec/libmilter': atLeast(round2(vsLibmilter), 1.5) },
    notes,
  }
}

const round2 = (n: number) => Math.round(n * 100) / 100

if (require.main === module) runStandalone('milter', run)
