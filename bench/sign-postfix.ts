/**
 * Benchmark (issue 13): Postfix end to end, SIGNING. smtp-source -> private
 * Postfix -> smtp-sink on loopback, the same ~1 KB unsigned text/plain message
 * from alice@example.org, 20 sessions, in one run:
 *   (a) no milter,
 *   (b) linksec serve signing it (RFC 3156 multipart/signed, Ed25519 key made
 *       with `linksec keys generate`; 127.0.0.1 in [sign] trusted_networks,
 *       as smtp-source does not log in),
 *   (c) OpenDKIM (Debian opendkim) signing it, rsa-sha256 with a 2048-bit
 *       key, relaxed/relaxed (mail from 127.0.0.1 is internal: signed).
 * Same submission path (the private Postfix's smtpd_milters) for (b) and (c);
 * the sink check shows each signer's work at the sink before the runs.
 * Machinery shared with bench/postfix-e2e.ts (bench/lib/postfix-measure.ts).
 * Goal: b/c >= 1.5 (delivered msg/s).
 *
 *   node dist/bench/sign-postfix.js [--quick]
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { dkimKeyPair } from './lib/dkim-sign'
import { startOpendkimSigner, type RunningMilter } from './lib/milters'
import { linksecUnavailable, shippedNodeOptions, startLinksec } from './lib/linksec-serve'
import { measureOnce, sinkCheck, type Measurement, type MessageFile } from './lib/postfix-measure'
import { countsFor } from './postfix-e2e'
import { SENDER, writePlainMessage } from './lib/signed-message'
import { runStandalone } from './lib/standalone'
import { formatSpread, median, percentile, ratio, rotate, round, spread } from './lib/stats'
import { atLeast, type BenchOptions, type BenchResult } from './lib/types'

const CLI = path.resolve(__dirname, '..', 'bin', 'linksec.js')
const shipped = shippedNodeOptions()

interface Config {
  key: 'a' | 'b' | 'c'
  label: string
  /** A header line at the sink that shows the signer's work. */
  verdict?: RegExp
  start?: (dir: string) => Promise<RunningMilter>
}

async function startLinksecSigner(dir: string): Promise<RunningMilter> {
  const m = await startLinksec({
    dir,
    nodeArgs: shipped.args,
    ini: {
      main: { domain: 'example.org' },
      sign: { enabled: true, trusted_networks: '127.0.0.1/32' },
    },
  })
  const r = spawnSync(process.execPath, [CLI, 'keys', 'generate', SENDER, '--config', m.configDir], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (r.status !== 0) {
    await m.stop()
    throw new Error(`linksec keys generate failed: ${r.stderr}`)
  }
  // The running server re-reads secret_dir within a second of its change.
  await new Promise((res) => setTimeout(res, 1500))
  return m
}

async function startDkimSigner(dir: string): Promise<RunningMilter> {
  const keyFile = path.join(dir, 'dkim-s1.private')
  fs.writeFileSync(keyFile, dkimKeyPair().privateKeyPem)
  return startOpendkimSigner('example.org', keyFile)
}

const CONFIGS: Config[] = [
  { key: 'a', label: 'no milter' },
  {
    key: 'b',
    label: 'linksec signing (Ed25519, RFC 3156)',
    verdict: /^Content-Type: multipart\/signed/i,
    start: startLinksecSigner,
  },
  {
    key: 'c',
    label: 'OpenDKIM signing (rsa-sha256, 2048 bit)',
    verdict: /^DKIM-Signature:/i,
    start: startDkimSigner,
  },
]

interface Started {
  config: Config
  milter?: RunningMilter
  verdict: string
  skipped?: string
}

async function startAll(dir: string): Promise<Started[]> {
  const started: Started[] = []
  for (const config of CONFIGS) {
    if (config.key === 'b' && linksecUnavailable()) {
      started.push({ config, verdict: '', skipped: linksecUnavailable() })
      continue
    }
    try {
      const sub = path.join(dir, config.key)
      fs.mkdirSync(sub, { mode: 0o755 })
      const milter = config.start ? await config.start(sub) : undefined
      started.push({ config, milter, verdict: '' })
    } catch (err) {
      started.push({ config, verdict: '', skipped: err instanceof Error ? err.message : String(err) })
    }
  }
  return started
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-bench-sign-pf-'))
  fs.chmodSync(dir, 0o755)
  let all: Started[] = []
  try {
    opts.progress(0, 'writing the message, starting the signers')
    const msg = writePlainMessage(dir)
    all = await startAll(dir)
    opts.progress(0.02, 'sink check: does each signer sign?')
    for (const s of all) {
      if (s.skipped || !s.config.verdict) continue
      const lines = await sinkCheck(s.milter, msg, s.config.verdict)
      s.verdict = lines.length ? lines[0]!.split(';')[0]!.slice(0, 40) : 'NOT SIGNED'
    }
    const counts = countsFor(opts.quick)
    const live = all.filter((s) => !s.skipped)
    const samples = new Map<string, Measurement[]>(live.map((s) => [s.config.key, []]))
    let done = 0
    for (let r = 0; r < counts.rounds; r++)
      for (const s of rotate(live, r)) {
        opts.progress(
          0.05 + (0.95 * done++) / (counts.rounds * live.length),
          `round ${r + 1}, ${s.config.label}`,
        )
        samples.get(s.config.key)?.push(await measureOnce(s.milter, msg, counts, opts.signal))
      }
    opts.progress(1, 'done')
    return summarize(all, samples, msg, counts)
  } finally {
    for (const s of all) await s.milter?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

function summarize(
  all: Started[],
  samples: Map<string, Measurement[]>,
  msg: MessageFile & { bytes: number },
  c: ReturnType<typeof countsFor>,
): BenchResult {
  const rate = (k: string) => median((samples.get(k) ?? []).map((m) => m.load.rate))
  const base = (samples.get('a') ?? []).flatMap((m) => m.latenciesMs)
  const rows = all.map((s) => {
    const runs = samples.get(s.config.key) ?? []
    const lat = runs.flatMap((m) => m.latenciesMs)
    return {
      config: `(${s.config.key}) ${s.config.label}`,
      'delivered msg/s': s.skipped ? 'skipped' : formatSpread(spread(runs.map((m) => m.load.rate))),
      'p50 ms': round(percentile(lat, 50)),
      'p99 ms': round(percentile(lat, 99)),
      'added p50 ms': s.config.key === 'a' ? 0 : round(percentile(lat, 50) - percentile(base, 50)),
      'milter CPU ms/msg': round(median(runs.map((m) => m.milterCpuMsPerMessage))),
      'at sink': s.skipped ? '' : s.verdict || '-',
    }
  })
  const ratios = {
    'linksec-sign/opendkim-sign': ratio(rate('b'), rate('c')),
    'linksec-sign/no-milter': ratio(rate('b'), rate('a')),
    'opendkim-sign/no-milter': ratio(rate('c'), rate('a')),
  }
  const notes = [
    `${c.rounds} round(s) of ${c.messages} messages (+${c.warmup} warm-up), smtp-source -s ${c.sessions}, one SMTP session per message, configuration order rotated per round; msg/s = median (min–max) until the queue was empty.`,
    `Message: ${msg.bytes} bytes, text/plain 7bit, unsigned, From ${SENDER}; both signers sign every message (sink check above). linksec serve runs with ${shipped.args.join(' ') || '(no Node options)'} (${shipped.from}).`,
  ]
  for (const s of all.filter((x) => x.skipped)) notes.push(`(${s.config.key}) skipped: ${s.skipped}`)
  for (const s of all.filter((x) => x.config.verdict && !x.skipped && x.verdict === 'NOT SIGNED'))
    notes.push(`(${s.config.key}) the sink saw no signature: the row does not measure signing.`)
  const goals = { 'linksec-sign/opendkim-sign': atLeast(ratios['linksec-sign/opendkim-sign'], 1.5) }
  return { name: 'sign-postfix', rows, ratios, goals, notes }
}

if (require.main === module) runStandalone('sign-postfix', run)
