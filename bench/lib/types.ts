/**
 * The shape every benchmark module shares, so `bench/run.ts` can run them
 * side by side and write one `bench/results.json`.
 *
 * A bench module (`bench/<name>.ts`) exports
 *   `export async function run(opts: BenchOptions): Promise<BenchResult>`
 * and, when run directly (`node dist/bench/<name>.js [--quick]`), may call
 * `runStandalone(run)` from `bench/lib/standalone.ts`.
 */

/** Progress callback: `fraction` in [0, 1] of this benchmark, `label` says what runs now. */
export type Progress = (fraction: number, label: string) => void

export interface BenchOptions {
  /** Smoke run: much smaller counts, whole suite in a few minutes. */
  quick: boolean
  progress: Progress
  /**
   * Optional: aborted when the harness's time budget for this benchmark runs
   * out. A benchmark that honours it stops its load and cleans up its peers.
   */
  signal?: AbortSignal
}

/** One measured figure compared with its goal (e.g. b/a >= 0.95). */
export interface Goal {
  value: number
  goal: number
  met: boolean
}

export interface BenchResult {
  /** Short stable name, e.g. "postfix-e2e". */
  name: string
  /** Table rows; every row should have the same keys (the table columns). */
  rows: Array<Record<string, string | number>>
  /** Named ratios measured in the same run, e.g. {"linksec/no-milter": 0.97}. */
  ratios: Record<string, number>
  /** Ratios or sizes with a goal from the issue, keyed like `ratios`. */
  goals?: Record<string, Goal>
  /** Honest labels: what was exercised, what was skipped and why. */
  notes?: string[]
}

export type BenchRun = (opts: BenchOptions) => Promise<BenchResult>

/** Goal helpers: a ratio that must reach at least / stay at most `goal`. */
export function atLeast(value: number, goal: number): Goal {
  return { value, goal, met: Number.isFinite(value) && value >= goal }
}

export function atMost(value: number, goal: number): Goal {
  return { value, goal, met: Number.isFinite(value) && value <= goal }
}
