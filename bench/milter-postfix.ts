/**
 * End to end: smtp-source through a private Postfix 3.7 (one SMTP session,
 * so one milter connection, per message) with no milter, with `linksec
 * serve`, and with the libmilter test milter for reference, each run beside
 * the others in the same run. Throughput = messages delivered to smtp-sink
 * per second (shared/peers/bench-smtp.sh). Goal: linksec >= 0.90x Postfix
 * with no milter. Bounded in messages and time.
 *
 *   node dist/bench/milter-postfix.js [--quick]
 */
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { freePort } from '../test/helpers/ports'
import { PEERS_DIR, startLinksecServe, startPostfix, type ServeInstance } from '../test/helpers/postfix'
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

async function startLibmilter(): Promise<{ milter: string; stop(): void }> {
  const port = await freePort()
  const up = spawnSync('bash', [path.join(PEERS_DIR, 'test-milter-up.sh')], {
    env: { ...process.env, PORT: String(port) },
    encoding: 'utf8',
  })
  if (up.status !== 0) throw new Error(`test-milter-up.sh failed: ${up.stderr}`)
  const dir = /TM_DIR='([^']+)'/.exec(up.stdout)![1]!
  return {
    milter: `inet:127.0.0.1:${port}`,
    stop: () => void spawnSync('bash', [path.join(PEERS_DIR, 'peer-down.sh'), dir]),
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const count = opts.quick ? 500 : 2000
  const rounds = opts.quick ? 1 : 3
  const sessions = 20
  let serve: ServeInstance | undefined
  let libmilter: Awaited<ReturnType<typeof startLibmilter>> | undefined
  try {
    serve = await startLinksecServe({
      ini: { log: { level: 'warn' }, socketmap: { enabled: false }, http: { enabled: false } },
    })
    libmilter = await startLibmilter()
    const configs: Config[] = [
      { name: 'Postfix, no milter' },
      { name: 'Postfix + linksec serve', milter: serve.milterAddress },
      { name: 'Postfix + libmilter (python3-milter)', milter: libmilter.milter },
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
    return summarize(configs, results, count, sessions, rounds)
  } finally {
    await serve?.stop()
    libmilter?.stop()
  }
}

function summarize(
  configs: Config[],
  results: Map<string, Measured[]>,
  count: number,
  sessions: number,
  rounds: number,
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
    }
  })
  const rate = (i: number) => rows[i]!['delivered msg/s']
  const vsNone = Math.round(ratio(rate(1), rate(0)) * 100) / 100
  return {
    name: 'milter-postfix',
    rows,
    ratios: {
      'linksec/no-milter': vsNone,
      'libmilter/no-milter': Math.round(ratio(rate(2), rate(0)) * 100) / 100,
    },
    goals: { 'linksec/no-milter': atLeast(vsNone, 0.9) },
    notes: [
      `smtp-source -s ${sessions} -m ${count} -l 2048 (one SMTP session per message), ${rounds} round(s), order rotated, median`,
      'delivered = until the Postfix queue is empty again (every message at smtp-sink); fresh Postfix per run',
    ],
  }
}

if (require.main === module) runStandalone('milter-postfix', run)
