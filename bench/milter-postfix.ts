/**
 * End to end: smtp-source through a private Postfix 3.7 (one SMTP session,
 * so one milter connection, per message) with no milter, with `linksec
 * serve` (TCP and unix socket), and with the libmilter test milter for
 * reference, each run beside the others in the same run; then one session at
 * a time, which shows the latency a milter adds per message. Throughput = messages delivered to smtp-sink
 * per second (shared/peers/bench-smtp.sh). Goal: linksec >= 0.90x Postfix
 * with no milter. Bounded in messages and time.
 *
 *   node dist/bench/milter-postfix.js [--quick]
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {
  PEERS_DIR,
  startLinksecServe,
  startPostfix,
  startTestMilter,
  type ServeInstance,
  type TestMilter,
} from '../test/helpers/postfix'
import { median, ratio } from './lib/stats'
import { runStandalone } from './lib/standalone'
import { atLeast, type BenchOptions, type BenchResult } from './lib/types'

interface Config {
  name: string
  milter?: string
}

interface Measured {
  deliveredPerSecond: number
  injectedPerSecond: number
}

/** One bench-smtp.sh run against a fresh Postfix with the given milter. */
async function measure(config: Config, count: number, sessions: number): Promise<Measured> {
  const pf = await startPostfix({ milter: config.milter, sinkDump: false, tls: false })
  try {
    const env = {
      ...process.env,
      PATH: `${process.env.PATH}:/usr/sbin`,
      PF_DIR: pf.dir,
      PORT: String(pf.port),
    }
    const script = path.join(PEERS_DIR, 'bench-smtp.sh')
    // Warm-up (process start-up, milter connection set-up, JIT) before the measured run.
    spawnSync('bash', [script], {
      env: { ...env, COUNT: '100', SESSIONS: String(sessions) },
      encoding: 'utf8',
    })
    const r = spawnSync('bash', [script], {
      env: { ...env, COUNT: String(count), SESSIONS: String(sessions), SIZE: '2048', TIMEOUT: '120' },
      encoding: 'utf8',
      timeout: 180000,
    })
    const line = r.stdout.trim()
    const field = (k: string) => Number(new RegExp(`${k}=([\\d.]+)`).exec(line)?.[1] ?? NaN)
    if (field('sent') !== count)
      throw new Error(`${config.name}: ${line || r.stderr} (expected sent=${count})`)
    return { deliveredPerSecond: field('e2e_rate'), injectedPerSecond: field('inject_rate') }
  } finally {
    await pf.stop()
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const count = opts.quick ? 500 : 2000
  const rounds = opts.quick ? 1 : 3
  const sessions = 20
  const serialCount = opts.quick ? 50 : 200
  const ini = { log: { level: 'warn' }, socketmap: { enabled: false }, http: { enabled: false } }
  // Postfix's smtpd (user postfix) must reach the socket: a traversable directory.
  const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-bench-'))
  fs.chmodSync(sockDir, 0o755)
  let serve: ServeInstance | undefined
  let serveUnix: ServeInstance | undefined
  let libmilter: TestMilter | undefined
  try {
    serve = await startLinksecServe({ ini })
    serveUnix = await startLinksecServe({ ini, milterListen: `unix:${sockDir}/milter.sock` })
    libmilter = await startTestMilter()
    const configs: Config[] = [
      { name: 'Postfix, no milter' },
      { name: 'Postfix + linksec serve', milter: serve.milterAddress },
      { name: 'Postfix + linksec serve (unix socket)', milter: serveUnix.milterAddress },
      { name: 'Postfix + libmilter (python3-milter)', milter: libmilter.address },
    ]
    const results = new Map<string, Measured[]>(configs.map((c) => [c.name, []]))
    for (let r = 0; r < rounds && !opts.signal?.aborted; r++) {
      // Rotate the order per round so drift on a shared machine does not favour one.
      const order = configs.map((_, i) => configs[(i + r) % configs.length]!)
      for (const [i, c] of order.entries()) {
        opts.progress((r * configs.length + i) / (rounds * configs.length), `${c.name}, round ${r + 1}`)
        results.get(c.name)!.push(await measure(c, count, sessions))
      }
    }
    const serial = new Map<string, Measured>()
    for (const c of configs) {
      if (opts.signal?.aborted) break
      opts.progress(0.95, `${c.name}, one session at a time`)
      serial.set(c.name, await measure(c, serialCount, 1))
    }
    return summarize(configs, results, serial, { count, sessions, rounds, serialCount })
  } finally {
    await serve?.stop()
    await serveUnix?.stop()
    libmilter?.stop()
    fs.rmSync(sockDir, { recursive: true, force: true })
  }
}

function summarize(
  configs: Config[],
  results: Map<string, Measured[]>,
  serial: Map<string, Measured>,
  o: { count: number; sessions: number; rounds: number; serialCount: number },
): BenchResult {
  const rows = configs.map((c) => {
    const ms = results.get(c.name)!
    const delivered = ms.map((m) => m.deliveredPerSecond)
    return {
      config: c.name,
      'delivered msg/s': Math.round(median(delivered)),
      min: Math.round(Math.min(...delivered)),
      max: Math.round(Math.max(...delivered)),
      'injected msg/s': Math.round(median(ms.map((m) => m.injectedPerSecond))),
      '1 session msg/s': Math.round(serial.get(c.name)?.deliveredPerSecond ?? NaN),
      'ms/msg, 1 session': Math.round((1000 / (serial.get(c.name)?.deliveredPerSecond ?? NaN)) * 10) / 10,
    }
  })
  const rate = (i: number) => rows[i]!['delivered msg/s']
  const vs = (i: number) => Math.round(ratio(rate(i), rate(0)) * 100) / 100
  return {
    name: 'milter-postfix',
    rows,
    ratios: { 'linksec/no-milter': vs(1), 'linksec-unix/no-milter': vs(2), 'libmilter/no-milter': vs(3) },
    goals: { 'linksec/no-milter': atLeast(vs(1), 0.9) },
    notes: [
      `smtp-source -s ${o.sessions} -m ${o.count} -l 2048 (one SMTP session per message), ${o.rounds} round(s), order rotated, median`,
      `1 session: smtp-source -s 1 -m ${o.serialCount}; ms/msg is the time one message takes end to end`,
      'delivered = until the Postfix queue is empty again (every message at smtp-sink); fresh Postfix per run',
    ],
  }
}

if (require.main === module) runStandalone('milter-postfix', run)
