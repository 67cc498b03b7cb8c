/**
 * Runs one benchmark module under a time budget and turns a crash or an
 * overrun into a recorded error instead of a lost run.
 */
import { ed25519Micros, hostNote } from './host-check'
import type { ProgressBar } from './progress'
import type { RecordedResult } from './results'
import type { BenchResult, BenchRun } from './types'

export interface ExecuteOptions {
  name: string
  run: BenchRun
  quick: boolean
  budgetMs: number
  bar: ProgressBar
  prefix: string
}

/** After an overrun the module gets this long to stop its peers before the harness moves on. */
const CLEANUP_GRACE_MS = 30_000

export async function executeBench(o: ExecuteOptions): Promise<RecordedResult> {
  const hostBefore = ed25519Micros()
  const started = Date.now()
  const base = { ranAt: new Date(started).toISOString(), quick: o.quick }
  const abort = new AbortController()
  const running = o.run({ quick: o.quick, progress: o.bar.forBench(o.prefix), signal: abort.signal })
  try {
    const result = await withBudget(running, o.budgetMs, abort)
    const seconds = elapsed(started)
    const hostAfter = ed25519Micros()
    const notes = [...(result.notes ?? []), hostNote(hostBefore, hostAfter)]
    return {
      ...result,
      name: result.name || o.name,
      notes,
      ...base,
      seconds,
      hostEd25519Micros: [hostBefore, hostAfter],
    }
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err)
    return { name: o.name, rows: [], ratios: {}, error, ...base, seconds: elapsed(started) }
  } finally {
    o.bar.done()
  }
}

async function withBudget(
  running: Promise<BenchResult>,
  budgetMs: number,
  abort: AbortController,
): Promise<BenchResult> {
  const outcome = await settleWithin(running, budgetMs)
  if (outcome) return outcome()
  abort.abort(new Error(`time budget of ${Math.round(budgetMs / 1000)} s ran out`))
  await settleWithin(running, CLEANUP_GRACE_MS)
  throw abort.signal.reason
}

/** Resolves to a thunk giving the settled value (or rethrowing), or undefined after `ms`. */
async function settleWithin<T>(p: Promise<T>, ms: number): Promise<(() => T) | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms)
  })
  const settled = p.then(
    (value) => () => value,
    (err: unknown) => () => {
      throw err
    },
  )
  try {
    return await Promise.race([settled, timeout])
  } finally {
    clearTimeout(timer)
  }
}

function elapsed(started: number): number {
  return Math.round((Date.now() - started) / 100) / 10
}
