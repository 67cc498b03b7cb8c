/**
 * `npm run bench [-- --quick] [-- --only NAME[,NAME]] [-- --list]`
 *
 * Runs every benchmark in one process, one after another (never two at once:
 * they would steal each other's CPU), prints one table per benchmark on
 * stdout, shows progress on stderr and writes bench/results.json with the
 * machine's facts. Ratios are taken within one run because absolute times on
 * a shared machine drift.
 */
import { listBenchmarks, loadRun, missingDeclared, type BenchModule } from './lib/discover'
import { executeBench } from './lib/execute'
import { machineFacts } from './lib/machine'
import { ProgressBar } from './lib/progress'
import { defaultResultsPath, writeResults, type RecordedResult } from './lib/results'
import { budgetMs, parseFlags, totalBudgetMs, type CliFlags } from './lib/standalone'
import { formatResult } from './lib/table'

/** Below this much time left in the run's budget, a benchmark is not started. */
const MIN_START_MS = 15_000

interface Slot {
  index: number
  total: number
  leftMs: number
}

async function runOne(mod: BenchModule, slot: Slot, flags: CliFlags, bar: ProgressBar) {
  const prefix = `${slot.index + 1}/${slot.total} ${mod.name}`
  try {
    if (slot.leftMs < MIN_START_MS) throw new Error('not run: the time budget of the whole run is spent')
    const run = loadRun(mod)
    const budget = Math.min(budgetMs(flags.quick), slot.leftMs)
    return await executeBench({ name: mod.name, run, quick: flags.quick, budgetMs: budget, bar, prefix })
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err)
    const now = new Date().toISOString()
    return { name: mod.name, rows: [], ratios: {}, error, ranAt: now, quick: flags.quick, seconds: 0 }
  }
}

function selected(flags: CliFlags): BenchModule[] {
  const all = listBenchmarks(__dirname)
  if (flags.only.length === 0) return all
  const unknown = flags.only.filter((n) => !all.some((m) => m.name === n))
  if (unknown.length) throw new Error(`no benchmark named ${unknown.join(', ')}; --list shows them`)
  return all.filter((m) => flags.only.includes(m.name))
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2))
  const mods = selected(flags)
  if (flags.list) {
    for (const m of mods) process.stdout.write(`${m.name}\n`)
    return 0
  }
  const missing = missingDeclared(__dirname)
  if (missing.length) process.stderr.write(`not built yet, skipped: ${missing.join(', ')}\n`)
  const machine = machineFacts()
  process.stdout.write(`# linksec benchmarks${flags.quick ? ' (quick)' : ''}: ${describe(machine)}\n\n`)
  const bar = new ProgressBar()
  const results: RecordedResult[] = []
  const end = Date.now() + totalBudgetMs(flags.quick)
  for (const [i, mod] of mods.entries()) {
    const result = await runOne(mod, { index: i, total: mods.length, leftMs: end - Date.now() }, flags, bar)
    results.push(result)
    process.stdout.write(formatResult(result) + '\n')
  }
  const file = flags.resultsPath ?? defaultResultsPath()
  writeResults(file, machine, results)
  process.stderr.write(`results written to ${file}\n`)
  return results.some((r) => r.error) ? 1 : 0
}

function describe(m: ReturnType<typeof machineFacts>): string {
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryMB} MB, ${m.os}, Node ${m.node}, ${m.date}`
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 2
  },
)
