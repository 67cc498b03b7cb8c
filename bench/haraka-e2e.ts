/**
 * Benchmark 2: Haraka end to end. The same load as the Postfix benchmark
 * (smtp-source, ~2 KB signed messages, 20 sessions) through a real Haraka
 * (test/helpers/haraka.ts: Haraka 3 from node_modules, linksec installed with
 * npm as an operator would) that queues to disk, (a) without and (b) with
 * the linksec plugins. Goal (issue 7): b/a >= 0.90.
 *
 *   node dist/bench/haraka-e2e.js [--quick]
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import { startDnsServer, type TestDnsServer } from '../test/helpers/dns-server'
import { startHaraka, type HarakaInstance } from '../test/helpers/haraka'
import { runCommand } from './lib/peers'
import { dataPayload, measureLatencies } from './lib/smtp-client'
import { writeBenchMessage, RECIPIENT, SENDER, type BenchMessage } from './lib/signed-message'
import { runStandalone } from './lib/standalone'
import { formatSpread, median, percentile, ratio, rotate, round, spread } from './lib/stats'
import { atLeast, type BenchOptions, type BenchResult } from './lib/types'

interface Config {
  key: 'a' | 'b'
  label: string
  plugins: string[]
}

const CONFIGS: Config[] = [
  { key: 'a', label: 'Haraka without linksec', plugins: ['tls', 'test_sink'] },
  { key: 'b', label: 'Haraka with linksec', plugins: ['tls', 'linksec', 'test_sink'] },
]

/** Haraka is one Node process: its JIT needs a longer warm-up than Postfix before a round is fair. */
export function harakaCounts(quick: boolean) {
  return quick
    ? { rounds: 1, sessions: 20, messages: 300, warmup: 100, latencyMessages: 20, timeoutMs: 60_000 }
    : { rounds: 3, sessions: 20, messages: 2000, warmup: 200, latencyMessages: 150, timeoutMs: 180_000 }
}

interface Sample {
  rate: number
  latencies: number[]
}

const ENVELOPE = { helo: 'client.example.test', from: SENDER, to: RECIPIENT }

function queuedCount(h: HarakaInstance): number {
  const dir = path.join(h.dir, 'sink')
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length : 0
}

/** smtp-source into Haraka; a message counts once test_sink has written it (before the 250). */
async function pushLoad(
  h: HarakaInstance,
  msg: BenchMessage,
  count: number,
  sessions: number,
  timeoutMs: number,
) {
  const before = queuedCount(h)
  const args = ['-s', String(sessions), '-m', String(count), '-F', msg.file, '-f', SENDER, '-t', RECIPIENT]
  const t0 = performance.now()
  const r = await runCommand(
    'smtp-source',
    [...args, '-M', 'client.example.test', `127.0.0.1:${h.port}`],
    {},
    timeoutMs,
  )
  const seconds = (performance.now() - t0) / 1000
  const queued = queuedCount(h) - before
  const errors = r.stderr.trim()
  if (queued < count || errors)
    throw new Error(
      `Haraka queued ${queued} of ${count}${errors ? `; smtp-source: ${errors.split('\n')[0]}` : ''}; log: ${h.log().slice(-300)}`,
    )
  return count / seconds
}

async function measureOnce(h: HarakaInstance, msg: BenchMessage, opts: BenchOptions): Promise<Sample> {
  const c = harakaCounts(opts.quick)
  await pushLoad(h, msg, c.warmup, c.sessions, c.timeoutMs)
  const rate = await pushLoad(h, msg, c.messages, c.sessions, c.timeoutMs)
  const latencies = await measureLatencies({
    port: h.port,
    count: c.latencyMessages,
    sessions: 1,
    envelope: ENVELOPE,
    payload: dataPayload(msg.text),
    signal: opts.signal,
  })
  return { rate, latencies }
}

/** The verdict linksec wrote into the first queued message, e.g. "x-openpgp=pass". */
function verdictOf(h: HarakaInstance): string {
  const raw = h.queued()[0]?.raw ?? ''
  const head = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ')
  const ar = head.split('\r\n').filter((l) => /^Authentication-Results:/i.test(l))
  return ar.map((l) => /x-openpgp=\w+/.exec(l)?.[0] ?? /x-tls=\w+/.exec(l)?.[0] ?? 'other').join(' ') || '-'
}

function linksecIni(dns: TestDnsServer) {
  return { keys: { dir: 'keys', methods: 'local' }, resolver: { servers: dns.address, timeout_ms: 1000 } }
}

async function startAll(msg: BenchMessage, dns: TestDnsServer): Promise<Map<string, HarakaInstance>> {
  const started = new Map<string, HarakaInstance>()
  try {
    for (const c of CONFIGS) {
      const config = { [`keys/${SENDER}.asc`]: msg.publicKeyArmored }
      started.set(c.key, await startHaraka({ plugins: c.plugins, linksec: linksecIni(dns), config }))
    }
    return started
  } catch (err) {
    for (const h of started.values()) await h.stop()
    throw err
  }
}

function summarize(
  samples: Map<string, Sample[]>,
  verdicts: Map<string, string>,
  msg: BenchMessage,
  quick: boolean,
): BenchResult {
  const c = harakaCounts(quick)
  const rate = (k: string) => median((samples.get(k) ?? []).map((s) => s.rate))
  const lat = (k: string) => (samples.get(k) ?? []).flatMap((s) => s.latencies)
  const rows = CONFIGS.map((cfg) => ({
    config: `(${cfg.key}) ${cfg.label}`,
    'queued msg/s': formatSpread(spread((samples.get(cfg.key) ?? []).map((s) => s.rate))),
    'p50 ms': round(percentile(lat(cfg.key), 50)),
    'p99 ms': round(percentile(lat(cfg.key), 99)),
    'added p50 ms': round(percentile(lat(cfg.key), 50) - percentile(lat('a'), 50)),
    'added p99 ms': round(percentile(lat(cfg.key), 99) - percentile(lat('a'), 99)),
    'verdict in message': verdicts.get(cfg.key) ?? '-',
  }))
  const ratios = { 'linksec/no-linksec': ratio(rate('b'), rate('a')) }
  const notes = [
    `${c.rounds} round(s) of ${c.messages} messages (+${c.warmup} warm-up) with smtp-source -s ${c.sessions} -F <message> into one Haraka per configuration (order rotated per round); Haraka answers 250 only after test_sink has written the message to disk, so msg/s = messages / smtp-source wall time; every message is counted in the sink.`,
    `Latency: ${c.latencyMessages} single-session transactions per round (bench/lib/smtp-client.ts), connect to the 250 after the dot. Message: ${msg.bytes} bytes, PGP/MIME + DKIM signed; linksec gets the sender's key from its local store and a loopback DNS server that answers NXDOMAIN.`,
  ]
  if (!/x-openpgp=pass/.test(verdicts.get('b') ?? ''))
    notes.push(
      `(b) the queued message carries no x-openpgp=pass (${verdicts.get('b') || 'nothing'}): the row measures the linksec duties that ran, without a passing signature verification.`,
    )
  return {
    name: 'haraka-e2e',
    rows,
    ratios,
    goals: { 'linksec/no-linksec': atLeast(ratios['linksec/no-linksec'], 0.9) },
    notes,
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-bench-haraka-'))
  const dns = await startDnsServer({})
  let harakas = new Map<string, HarakaInstance>()
  try {
    opts.progress(0, 'installing and starting Haraka (with and without linksec)')
    const msg = await writeBenchMessage(dir)
    harakas = await startAll(msg, dns)
    const c = harakaCounts(opts.quick)
    const samples = new Map<string, Sample[]>(CONFIGS.map((cfg) => [cfg.key, []]))
    const verdicts = new Map<string, string>()
    for (let r = 0; r < c.rounds; r++) {
      for (const [i, cfg] of rotate(CONFIGS, r).entries()) {
        opts.progress(
          0.1 + (0.9 * (r * CONFIGS.length + i)) / (c.rounds * CONFIGS.length),
          `round ${r + 1}/${c.rounds}, ${cfg.label}`,
        )
        const h = harakas.get(cfg.key) as HarakaInstance
        samples.get(cfg.key)?.push(await measureOnce(h, msg, opts))
        if (!verdicts.has(cfg.key)) verdicts.set(cfg.key, verdictOf(h))
      }
    }
    opts.progress(1, 'done')
    return summarize(samples, verdicts, msg, opts.quick)
  } finally {
    for (const h of harakas.values()) await h.stop()
    await dns.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (require.main === module) runStandalone('haraka-e2e', run)
