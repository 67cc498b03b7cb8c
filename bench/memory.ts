/**
 * Benchmark 3: memory. Resident size (VmRSS, and the peak VmHWM) of
 * `linksec serve` (a) just started, (b) holding 1,000 concurrent milter
 * sessions (OPTNEG + CONNECT + HELO, as Postfix holds them), (c) after
 * 100,000 distinct sender domains have passed through the milter and its
 * lookup caches, with the 1,000 sessions still open; (d) "under attack": a
 * fresh `linksec serve` with the default [milter] limits against a header
 * flood, a macro flood, big bodies on many sessions and idle connections
 * (bench/lib/attack.ts), with the worst /healthz latency seen during each.
 * Goal: <= 150 MB in both runs.
 *
 * `linksec serve` runs with the Node options it ships with (the systemd
 * unit's NODE_OPTIONS; LINKSEC_BENCH_NODE_OPTIONS overrides them to compare).
 * The notes add what one entry of each lookup cache costs
 * (bench/lib/entry-cost.ts), so cache_max settings can be sized.
 *
 *   node dist/bench/memory.js [--quick]
 *   LINKSEC_BENCH_ATTACKS="big bodies" node dist/bench/memory.js   (only the
 *     under-attack stage, only the attacks whose name contains the text;
 *     LINKSEC_BENCH_KEEP_LOG=FILE keeps the serve log, e.g. with --trace-gc;
 *     LINKSEC_BENCH_INI='{"milter":{"max_held_bytes":33554432}}' overrides keys)
 *   LINKSEC_BENCH_NODE_OPTIONS="--max-old-space-size=256" node dist/bench/memory.js
 */
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as os from 'node:os'
import * as path from 'node:path'
import { ATTACKS, runAttack, type AttackResult } from './lib/attack'
import { holdSessions, messageParts, runTransactions, type MessageParts } from './lib/milter-load'
import { rssMB } from './lib/milters'
import { entryCostsInChild, type EntryCosts } from './lib/entry-cost'
import {
  linksecUnavailable,
  shippedNodeOptions,
  startLinksec,
  type IniSections,
  type RunningLinksec,
} from './lib/linksec-serve'
import { writeBenchMessage, SENDER } from './lib/signed-message'
import { runStandalone } from './lib/standalone'
import { round } from './lib/stats'
import { atMost, type BenchOptions, type BenchResult } from './lib/types'

const GOAL_MB = 150

export function memoryCounts(quick: boolean) {
  return quick
    ? { sessions: 200, domains: 5_000, workers: 20, seconds: 60 }
    : { sessions: 1_000, domains: 100_000, workers: 50, seconds: 420 }
}

/** VmHWM: the peak resident size so far, in MB. */
function peakMB(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : NaN
  } catch {
    return NaN
  }
}

function fetchMetrics(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve(body))
    })
    req.on('error', () => resolve(''))
    req.on('timeout', () => req.destroy())
  })
}

/** Sum of a metric's samples (all label sets), NaN when absent. */
export function metricSum(text: string, name: string): number {
  const values = text
    .split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)))
  return values.length ? values.reduce((a, b) => a + b, 0) : NaN
}

interface Snapshot {
  stage: string
  rss: number
  peak: number
  /** V8 heap in use (live objects and not yet collected garbage), from the process metrics. */
  heapUsed: number
  /** V8 heap reserved (in use plus room V8 keeps after collecting): the GC slack shows here. */
  heapTotal: number
  /** Memory outside the V8 heap that V8 knows of (Buffers, TLS), from the process metrics. */
  external: number
  sessions: number
}

const MB = 2 ** 20

async function snapshot(ls: RunningLinksec, stage: string): Promise<Snapshot> {
  // Let the event loop settle so the figure is not taken mid-burst.
  await new Promise((r) => setTimeout(r, 1000))
  const metrics = await fetchMetrics(ls.httpPort)
  return {
    stage,
    rss: rssMB(ls.pid),
    peak: peakMB(ls.pid),
    heapUsed: metricSum(metrics, 'linksec_nodejs_heap_size_used_bytes') / MB,
    heapTotal: metricSum(metrics, 'linksec_nodejs_heap_size_total_bytes') / MB,
    external: metricSum(metrics, 'linksec_nodejs_external_memory_bytes') / MB,
    sessions: metricSum(metrics, 'linksec_milter_sessions'),
  }
}

/**
 * Each transaction comes from its own domain (u<n>@d<n>.bench.test) to a
 * recipient in another new domain, with the same signed body; every second
 * one is tagged Link-Security-Required: 3, so key lookups (sender) and
 * policy lookups (recipient) both meet a new domain each time.
 */
function domainMessage(template: MessageParts) {
  const base = template.headers.filter(([name]) => !/^(dkim-signature|from|to)$/i.test(name))
  return (n: number) => {
    const sender = `u${n}@d${n}.bench.test`
    const rcpt = `bob@r${n}.bench.test`
    const headers: Array<[string, string]> = [['From', `<${sender}>`], ['To', `<${rcpt}>`], ...base]
    if (n % 2 === 0) headers.push(['Link-Security-Required', '3'])
    return { sender, rcpt, parts: { headers, body: template.body } }
  }
}

async function measure(ls: RunningLinksec, parts: MessageParts, opts: BenchOptions) {
  const c = memoryCounts(opts.quick)
  const snaps = [await snapshot(ls, 'started')]
  opts.progress(0.05, `opening ${c.sessions} milter sessions`)
  const held = await holdSessions(ls.socket, c.sessions, 50, opts.signal)
  try {
    snaps.push(await snapshot(ls, `${held.length} sessions held`))
    const dnsBefore = ls.dns.queries.length
    const onProgress = (done: number) =>
      opts.progress(0.1 + (0.85 * done) / c.domains, `${done} of ${c.domains} sender domains`)
    const deadline = Date.now() + c.seconds * 1000
    const load = await runTransactions({
      target: ls.socket,
      total: c.domains,
      workers: c.workers,
      message: domainMessage(parts),
      deadline,
      signal: opts.signal,
      onProgress,
    })
    snaps.push(await snapshot(ls, `+ ${load.done} sender domains`))
    return {
      snaps,
      held: held.length,
      load,
      dnsQueries: ls.dns.queries.length - dnsBefore,
      metrics: await fetchMetrics(ls.httpPort),
    }
  } finally {
    for (const c of held) c.destroy()
  }
}

interface Setup {
  node: { args: string[]; from: string }
  entryCosts?: EntryCosts
  entryCostError?: string
}

function setupNotes(setup: Setup): string[] {
  const flags = setup.node.args.length ? setup.node.args.join(' ') : '(none)'
  const notes = [`Node options of linksec serve: ${flags} — ${setup.node.from}.`]
  const c = setup.entryCosts
  if (c)
    notes.push(
      `Heap bytes per cache entry (${c.entries} distinct names that publish nothing; bench/lib/entry-cost.ts): [keys] cache ${c.bytes.keys}, signature-policy cache ${c.bytes.signaturePolicy}, [policy] cache ${c.bytes.policy}, learned declarations ${c.bytes.learned}.`,
    )
  else notes.push(`Per-entry cache costs not measured: ${setup.entryCostError ?? 'unknown error'}.`)
  return notes
}

function withAttack(r: BenchResult, u: UnderAttack): BenchResult {
  const peak = Math.max(...u.snaps.map((s) => s.peak))
  return {
    ...r,
    rows: [...r.rows, ...u.snaps.map(row)],
    ratios: { ...r.ratios, 'under attack: peak MB / goal MB': peak / GOAL_MB },
    goals: { ...r.goals, 'peak RSS MB under attack': atMost(peak, GOAL_MB) },
    notes: [...(r.notes ?? []), ...attackNotes(u)],
  }
}

function row(s: Snapshot): Record<string, string | number> {
  return {
    stage: s.stage,
    'RSS MB': round(s.rss),
    'peak RSS MB': round(s.peak),
    'V8 heap used MB': round(s.heapUsed),
    'V8 heap total MB': round(s.heapTotal),
    'external MB': round(s.external),
    'milter sessions (gauge)': s.sessions,
  }
}

function summarize(r: Awaited<ReturnType<typeof measure>>, quick: boolean, setup: Setup): BenchResult {
  const c = memoryCounts(quick)
  const rows = r.snaps.map(row)
  const worst = Math.max(...r.snaps.map((s) => s.peak))
  const lookups = metricSum(r.metrics, 'linksec_key_lookups_total')
  const policyLookups = metricSum(r.metrics, 'linksec_policy_lookups_total')
  const notes = [
    `${r.held} sessions held open after OPTNEG+CONNECT+HELO (test/helpers/milter-client.ts) while ${r.load.done} transactions from distinct sender domains u<n>@d<n>.bench.test to bob@r<n>.bench.test ran over ${c.workers} more TLS sessions (PGP/MIME body signed by another key; every second message tagged Link-Security-Required: 3).`,
    `Replies: ${JSON.stringify(r.load.replies)}. DNS queries the milter made to the loopback test DNS (all NXDOMAIN): ${r.dnsQueries}; linksec_key_lookups_total: ${Number.isNaN(lookups) ? 'absent' : lookups}; linksec_policy_lookups_total: ${Number.isNaN(policyLookups) ? 'absent' : policyLookups}.`,
    'Caches are bounded by [keys] cache_max and [policy] cache_max / learned_max (defaults); peak = VmHWM of the linksec process.',
    ...setupNotes(setup),
  ]
  if (r.load.done < c.domains)
    notes.push(`Only ${r.load.done} of ${c.domains} domains fitted in the ${c.seconds} s bound.`)
  if (r.dnsQueries === 0 && !(lookups > 0) && !(policyLookups > 0))
    notes.push(
      'No lookups were made: the milter did not consult the key or policy caches for these messages, so the figure covers sessions and message handling only.',
    )
  return {
    name: 'memory',
    rows,
    ratios: { 'peak MB / goal MB': worst / GOAL_MB },
    goals: { 'peak RSS MB': atMost(worst, GOAL_MB) },
    notes,
  }
}

interface UnderAttack {
  snaps: Snapshot[]
  attacks: AttackResult[]
}

/** Stage (d): each attack against a fresh serve with the shipped limits, a snapshot after each. */
async function underAttack(ls: RunningLinksec, opts: BenchOptions): Promise<UnderAttack> {
  const snaps = [await snapshot(ls, 'under attack: started')]
  const attacks: AttackResult[] = []
  const only = process.env.LINKSEC_BENCH_ATTACKS
  for (const [i, a] of ATTACKS.entries()) {
    if (only && !a.name.includes(only)) continue
    if (opts.signal?.aborted) break
    opts.progress(0.9 + (0.07 * i) / ATTACKS.length, `under attack: ${a.name}`)
    attacks.push(await runAttack(ls, a))
    snaps.push(await snapshot(ls, `under attack: after ${a.name}`))
  }
  return { snaps, attacks }
}

function attackNotes(u: UnderAttack): string[] {
  return [
    'Under attack: a second linksec serve with the default [milter] limits (max_headers, max_header_bytes, max_macro_bytes, max_held_bytes, negotiation/frame timeouts, max_sessions); peak = its VmHWM.',
    ...u.attacks.map(
      (a) =>
        `${a.attack}: replies ${JSON.stringify(a.replies)}; worst /healthz latency ${round(a.worstHealthzMs)} ms${a.healthzFailures ? `, ${a.healthzFailures} /healthz probes failed` : ''}.`,
    ),
  ]
}

/** Only the under-attack stage (LINKSEC_BENCH_ATTACKS): to look at one attack without the rest. */
async function attacksOnly(dir: string, opts: BenchOptions): Promise<BenchResult> {
  const msg = await writeBenchMessage(dir)
  const node = shippedNodeOptions()
  const ls = await startLinksec({
    dir,
    keys: { [SENDER]: msg.publicKeyArmored },
    ini: {
      keys: { methods: 'local' },
      ...(JSON.parse(process.env.LINKSEC_BENCH_INI ?? '{}') as IniSections),
    },
    nodeArgs: node.args,
  })
  try {
    const attacked = await underAttack(ls, opts)
    const keep = process.env.LINKSEC_BENCH_KEEP_LOG
    if (keep) fs.copyFileSync(ls.logFile, keep)
    const empty: BenchResult = {
      name: 'memory',
      rows: [],
      ratios: {},
      goals: {},
      notes: setupNotes({ node, entryCostError: 'only the under-attack stage ran' }),
    }
    return withAttack(empty, attacked)
  } finally {
    await ls.stop()
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const why = linksecUnavailable()
  if (why) throw new Error(why)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-bench-mem-'))
  let ls: RunningLinksec | undefined
  try {
    if (process.env.LINKSEC_BENCH_ATTACKS) return await attacksOnly(dir, opts)
    opts.progress(0, 'starting linksec serve')
    const msg = await writeBenchMessage(dir)
    const setup: Setup = { node: shippedNodeOptions() }
    ls = await startLinksec({
      dir,
      keys: { [SENDER]: msg.publicKeyArmored },
      ini: { keys: { methods: 'local,wkd,openpgpkey' } },
      nodeArgs: setup.node.args,
    })
    const result = await measure(ls, messageParts(msg.text), opts)
    await ls.stop()
    ls = undefined
    ls = await startLinksec({
      dir,
      keys: { [SENDER]: msg.publicKeyArmored },
      ini: { keys: { methods: 'local' } },
      nodeArgs: setup.node.args,
    })
    const attacked = await underAttack(ls, opts)
    // The entry-cost child gets the CPU to itself.
    await ls.stop()
    ls = undefined
    opts.progress(0.97, 'per-entry cache costs')
    // 100,000 entries in every mode: a few seconds, and fixed costs do not blur the figure.
    await entryCostsInChild(100_000).then(
      (c) => (setup.entryCosts = c),
      (e: unknown) => (setup.entryCostError = e instanceof Error ? e.message : String(e)),
    )
    opts.progress(1, 'done')
    return withAttack(summarize(result, opts.quick, setup), attacked)
  } finally {
    await ls?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (require.main === module) runStandalone('memory', run)
