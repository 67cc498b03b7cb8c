/**
 * Lets a benchmark module run on its own: `node dist/bench/<name>.js [--quick]`
 * prints its table and records it in bench/results.json. In a module:
 *   if (require.main === module) runStandalone('postfix-e2e', run)
 */
import { parseArgs } from 'node:util'
import { executeBench } from './execute'
import { machineFacts } from './machine'
import { ProgressBar } from './progress'
import { defaultResultsPath, writeResults } from './results'
import { formatResult } from './table'
import type { BenchRun } from './types'

export interface CliFlags {
  quick: boolean
  only: string[]
  list: boolean
  resultsPath?: string
}

/** --quick, --only a,b (repeatable), --list, --results FILE. Unknown flags are an error that says what exists. */
export function parseFlags(argv: readonly string[]): CliFlags {
  let values
  try {
    ;({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        list: { type: 'boolean', default: false },
        only: { type: 'string', multiple: true, default: [] },
        results: { type: 'string' },
      },
    }))
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err)
    throw new Error(`${why}; use --quick, --only NAME[,NAME], --list, --results FILE`)
  }
  const only = values.only.flatMap((v) => v.split(',')).filter(Boolean)
  const flags: CliFlags = { quick: values.quick, only, list: values.list }
  if (values.results !== undefined) flags.resultsPath = values.results
  return flags
}

/** Budget per benchmark: generous, but every run ends. */
export function budgetMs(quick: boolean): number {
  return (quick ? 2 : 10) * 60_000
}

/** Budget for a whole `npm run bench` (issue 7: under 20 minutes, --quick under 3). */
export function totalBudgetMs(quick: boolean): number {
  return (quick ? 3 : 20) * 60_000
}

export function runStandalone(name: string, run: BenchRun): void {
  void (async () => {
    const flags = parseFlags(process.argv.slice(2))
    const bar = new ProgressBar()
    const result = await executeBench({
      name,
      run,
      quick: flags.quick,
      budgetMs: budgetMs(flags.quick),
      bar,
      prefix: name,
    })
    process.stdout.write(formatResult(result))
    if (result.error) process.stdout.write(`error: ${result.error}\n`)
    const file = flags.resultsPath ?? defaultResultsPath()
    writeResults(file, machineFacts(), [result])
    process.stderr.write(`results written to ${file}\n`)
    process.exitCode = result.error ? 1 : 0
  })().catch((err: unknown) => {
    process.stderr.write(`bench ${name}: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 2
  })
}
