/**
 * Milter CPU per message without an MTA: the benchmark message (bench/lib/
 * signed-message.ts, its key in the local store) through `linksec serve`'s
 * milter and through the no-op floor (bench/lib/noop-milter.ts), driven by
 * the project's milter client the way Postfix drives it (bench/lib/
 * milter-load.ts), and the milter process's own CPU time (/proc) divided by
 * the messages it handled. No Postfix, so what is left is linksec's own cost
 * per message (plus its socket reads and writes).
 *
 * To compare trees side by side in one run, pass other built trees with
 * --tree DIR (repeatable): each tree's own `linksec serve` and no-op milter
 * run, in alternating order per round, against the same client and message.
 * --cpu-prof writes a V8 CPU profile of each milter into the scratch
 * directory (printed at the end). On a shared machine CPU time per message
 * follows the neighbours, so each figure is given as the median and the
 * minimum of its rounds (the least disturbed one). Bounded in messages and
 * rounds. (Under valgrind's callgrind, instruction counts per message varied
 * by ±25 % from round to round: V8's time-driven work runs 50x slower there.)
 *
 *   node dist/bench/trace-milter-cpu.js [--quick] [--tree /other/checkout] [--cpu-prof]
 *        [--reuse] [--workers N] [--no-floor]
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { RunningMilter } from './lib/milters'
import { cpuMs } from './lib/milters'
import {
  messageParts,
  openSession,
  runTransactions,
  sendTransaction,
  type MessageParts,
} from './lib/milter-load'
import { writeBenchMessage, RECIPIENT, SENDER } from './lib/signed-message'
import { median } from './lib/stats'

const r3 = (n: number) => Math.round(n * 1000) / 1000

interface Target {
  label: string
  milter: RunningMilter
}

interface TreeLibs {
  startLinksec: (o: {
    dir: string
    keys: Record<string, string>
    nodeArgs?: readonly string[]
  }) => Promise<RunningMilter>
  startFrameworkMilter: (role: 'noop', listen: string) => Promise<RunningMilter>
}

/** The bench helpers of a built tree (its dist/), so its own serve and floor run. */
function treeLibs(tree: string): TreeLibs {
  const lib = path.join(tree, 'dist', 'bench', 'lib')
  const serve = require(path.join(lib, 'linksec-serve.js')) as Pick<TreeLibs, 'startLinksec'>
  const noop = require(path.join(lib, 'noop-milter.js')) as Pick<TreeLibs, 'startFrameworkMilter'>
  return { startLinksec: serve.startLinksec, startFrameworkMilter: noop.startFrameworkMilter }
}

/**
 * One message per milter connection, as Postfix does for smtp-source's one
 * message per SMTP session (negotiate, CONNECT, HELO, the transaction, QUIT);
 * with `reuse`, all messages over `workers` long-lived connections instead.
 */
async function load(t: Target, parts: MessageParts, count: number, workers: number, reuse: boolean) {
  if (reuse)
    return runTransactions({
      target: t.milter.socket,
      total: count,
      workers,
      message: () => ({ sender: SENDER, rcpt: RECIPIENT, parts }),
      deadline: Date.now() + 120_000,
    })
  const replies: Record<string, number> = {}
  let next = 0
  let done = 0
  const worker = async () => {
    while (next < count) {
      const n = next++
      const client = await openSession(t.milter.socket, n)
      try {
        const reply = await sendTransaction(client, SENDER, RECIPIENT, parts, `Q${n.toString(16)}`)
        replies[reply] = (replies[reply] ?? 0) + 1
        done++
      } finally {
        await client.quit().catch(() => client.destroy())
      }
    }
  }
  await Promise.all(Array.from({ length: workers }, worker))
  return { done, replies }
}

/** CPU ms per message of one round of `count` messages over `workers` sessions. */
async function round1(t: Target, parts: MessageParts, count: number, workers: number, reuse: boolean) {
  const c0 = cpuMs(t.milter.pid)
  const r = await load(t, parts, count, workers, reuse)
  const c1 = cpuMs(t.milter.pid)
  if (r.done !== count) throw new Error(`${t.label}: ${r.done} of ${count} messages in time`)
  if (Object.keys(r.replies).some((k) => k !== 'continue' && k !== 'accept'))
    throw new Error(`${t.label}: unexpected replies ${JSON.stringify(r.replies)}`)
  return (c1 - c0) / count
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const quick = argv.includes('--quick')
  const prof = argv.includes('--cpu-prof')
  const noFloor = argv.includes('--no-floor')
  const reuse = argv.includes('--reuse')
  const trees = [path.resolve(__dirname, '..', '..')]
  for (let i = 0; i < argv.length; i++) if (argv[i] === '--tree') trees.push(path.resolve(argv[++i]!))
  const count = quick ? 1000 : 2000
  const rounds = quick ? 4 : 12
  const wi = argv.indexOf('--workers')
  const workers = wi >= 0 ? Number(argv[wi + 1]) : 20
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-trace-milter-cpu-'))
  const msg = await writeBenchMessage(dir)
  const parts = messageParts(msg.text)
  const targets: Target[] = []
  try {
    for (const [i, tree] of trees.entries()) {
      const libs = treeLibs(tree)
      const nodeArgs = prof
        ? ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${path.join(dir, `prof-${i}`)}`]
        : []
      const sub = path.join(dir, `tree-${i}`)
      fs.mkdirSync(sub)
      const name = path.basename(tree)
      targets.push({
        label: `${name} linksec`,
        milter: await libs.startLinksec({ dir: sub, keys: { [SENDER]: msg.publicKeyArmored }, nodeArgs }),
      })
      if (!noFloor)
        targets.push({
          label: `${name} floor`,
          milter: await libs.startFrameworkMilter('noop', 'inet:127.0.0.1:0'),
        })
    }
    // Warm-up: the JIT of each milter (and of the client).
    for (const t of targets) await round1(t, parts, count, workers, reuse)
    const seen = new Map<string, number[]>(targets.map((t) => [t.label, []]))
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [...targets].reverse() : targets
      for (const t of order) seen.get(t.label)!.push(await round1(t, parts, count, workers, reuse))
    }
    for (const t of targets) {
      const v = seen.get(t.label)!
      process.stdout.write(
        `${t.label.padEnd(28)} CPU ms/msg median ${r3(median(v))} min ${r3(Math.min(...v))}  rounds ${v.map(r3).join(' ')}\n`,
      )
    }
  } finally {
    await Promise.all(targets.map((t) => t.milter.stop()))
  }
  if (prof) process.stdout.write(`profiles under ${dir}/prof-*\n`)
  else fs.rmSync(dir, { recursive: true, force: true })
}

if (require.main === module)
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    process.exitCode = 1
  })
