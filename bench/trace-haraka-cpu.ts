/**
 * Haraka CPU per message that linksec adds, side by side for several built
 * trees: one real Haraka without linksec (tls, test_sink) and, for each tree
 * given, one with that tree's linksec plugin (tls, linksec, test_sink),
 * loaded with the same smtp-source load of the benchmark message as
 * bench/haraka-e2e.ts (one message per SMTP session, 20 sessions). Rounds
 * alternate their order; each figure is the Haraka process's own CPU time
 * (/proc) per message minus that of the Haraka without linksec in the same
 * round. No DKIM plugin and no network namespace: for tracing linksec's own
 * cost between trees, not for the brief's comparison (that is haraka-e2e).
 *
 * --cpu-prof writes a V8 CPU profile of each Haraka into DIR (printed).
 *
 *   node dist/bench/trace-haraka-cpu.js [--quick] [--tree /other/checkout]... [--cpu-prof DIR]
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { startDnsServer } from '../test/helpers/dns-server'
import type { HarakaInstance, HarakaOptions } from '../test/helpers/haraka'
import { cpuMs, rssMB } from './lib/milters'
import { runCommand } from './lib/peers'
import { writeBenchMessage, RECIPIENT, SENDER, type BenchMessage } from './lib/signed-message'
import { median } from './lib/stats'

type StartHaraka = (o: HarakaOptions) => Promise<HarakaInstance>

/** A tree's own Haraka harness, so its node_modules/linksec link points at that tree. */
function startHarakaOf(tree: string): StartHaraka {
  return (require(path.join(tree, 'dist', 'test', 'helpers', 'haraka.js')) as { startHaraka: StartHaraka })
    .startHaraka
}

/** Harakas started by the tree harnesses write a CPU profile into `dir` (Haraka runs as `node bin/haraka`). */
function profileHarakas(dir: string): void {
  const cp = require('node:child_process') as { spawn: (...a: unknown[]) => unknown }
  const original = cp.spawn
  cp.spawn = (cmd: unknown, args: unknown, ...rest: unknown[]) =>
    cmd === process.execPath && Array.isArray(args) && String(args[0]).endsWith(path.join('bin', 'haraka'))
      ? original(cmd, ['--cpu-prof', `--cpu-prof-dir=${dir}`, ...(args as string[])], ...rest)
      : original(cmd, args, ...rest)
}

function queuedCount(h: HarakaInstance): number {
  const dir = path.join(h.dir, 'sink')
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length : 0
}

/** CPU ms per message of `count` messages (smtp-source, one per session, 20 sessions). */
async function push(h: HarakaInstance, msg: BenchMessage, count: number): Promise<number> {
  const before = queuedCount(h)
  const args = ['-s', '20', '-m', String(count), '-F', msg.file, '-f', SENDER, '-t', RECIPIENT]
  const c0 = cpuMs(h.pid)
  const r = await runCommand(
    'smtp-source',
    [...args, '-M', 'client.example.test', `127.0.0.1:${h.port}`],
    {},
    120_000,
  )
  const cpu = cpuMs(h.pid) - c0
  const queued = queuedCount(h) - before
  if (queued < count || r.stderr.trim()) throw new Error(`queued ${queued} of ${count}: ${r.stderr.trim()}`)
  return cpu / count
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const quick = argv.includes('--quick')
  const trees = [path.resolve(__dirname, '..', '..')]
  for (let i = 0; i < argv.length; i++) if (argv[i] === '--tree') trees.push(path.resolve(argv[++i]!))
  const prof = argv.indexOf('--cpu-prof')
  if (prof >= 0) profileHarakas(path.resolve(argv[prof + 1]!))
  const count = quick ? 500 : 1000
  const rounds = quick ? 4 : 8
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-haraka-cpu-'))
  const msg = await writeBenchMessage(dir)
  const dns = await startDnsServer({})
  const linksec = {
    keys: { dir: 'keys', methods: 'local' },
    resolver: { servers: dns.address, timeout_ms: 1000 },
  }
  const config = { [`keys/${SENDER}.asc`]: msg.publicKeyArmored }
  const started: Array<{ label: string; h: HarakaInstance }> = []
  try {
    started.push({
      label: 'no linksec',
      h: await startHarakaOf(trees[0]!)({ plugins: ['tls', 'test_sink'], linksec, config }),
    })
    for (const tree of trees)
      started.push({
        label: path.basename(tree),
        h: await startHarakaOf(tree)({ plugins: ['tls', 'linksec', 'test_sink'], linksec, config }),
      })
    for (const s of started) await push(s.h, msg, quick ? 1000 : 2000)
    const seen = new Map<string, number[]>(started.map((s) => [s.label, []]))
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [...started].reverse() : started
      const got = new Map<string, number>()
      for (const s of order) got.set(s.label, await push(s.h, msg, count))
      for (const s of started)
        seen.get(s.label)!.push(got.get(s.label)! - (s.label === 'no linksec' ? 0 : got.get('no linksec')!))
    }
    for (const s of started) {
      const v = seen.get(s.label)!
      const what = s.label === 'no linksec' ? 'Haraka CPU ms/msg' : 'added CPU ms/msg'
      process.stdout.write(
        `${s.label.padEnd(14)} ${what} median ${r3(median(v))} min ${r3(Math.min(...v))}  RSS ${Math.round(rssMB(s.h.pid))} MB  rounds ${v.map(r3).join(' ')}\n`,
      )
    }
  } finally {
    // Haraka shuts down cleanly (and so writes its profile) on SIGINT, not on the harness's SIGTERM.
    if (prof >= 0) {
      for (const s of started) process.kill(s.h.pid, 'SIGINT')
      await new Promise((r) => setTimeout(r, 5000))
    }
    for (const s of started) await s.h.stop()
    await dns.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const r3 = (n: number) => Math.round(n * 1000) / 1000

if (require.main === module)
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    process.exitCode = 1
  })
