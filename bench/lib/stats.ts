/**
 * Statistics for benchmark rounds. Each figure is the median over rounds
 * (robust against one noisy round on a shared machine); percentiles use the
 * nearest-rank method so a reported p99 is a latency that was really seen.
 */

function sortedCopy(values: readonly number[]): number[] {
  return [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
}

/** Median of the finite values; NaN when there are none. */
export function median(values: readonly number[]): number {
  const s = sortedCopy(values)
  const mid = Math.floor(s.length / 2)
  const hi = s[mid] ?? NaN
  return s.length % 2 === 1 ? hi : ((s[mid - 1] ?? NaN) + hi) / 2
}

/**
 * Nearest-rank percentile (p in [0, 100]): the smallest value with at least
 * p % of the values at or below it. NaN for no values.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`)
  const s = sortedCopy(values)
  const rank = Math.max(1, Math.ceil((p / 100) * s.length))
  return s[rank - 1] ?? NaN
}

/** numerator / denominator, NaN when either is missing or the denominator is not positive. */
export function ratio(numerator: number, denominator: number): number {
  if (!Number.isFinite(numerator) || !Number.isFinite(denominator) || denominator <= 0) return NaN
  return numerator / denominator
}

export interface Spread {
  median: number
  min: number
  max: number
  n: number
}

/** Median with min and max, for "734 (715–753)" style figures. */
export function spread(values: readonly number[]): Spread {
  const s = sortedCopy(values)
  return { median: median(s), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, n: s.length }
}

/** Rounds a figure for a table: 3 significant digits below 100, whole numbers above. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return NaN
  if (Math.abs(value) >= 100) return Math.round(value)
  return Number(value.toPrecision(3))
}

/** "734 (715–753)", or "n/a" without data. */
export function formatSpread(s: Spread): string {
  if (s.n === 0) return 'n/a'
  if (s.n === 1) return String(round(s.median))
  return `${round(s.median)} (${round(s.min)}–${round(s.max)})`
}

/**
 * The order in which configurations run in round `r`: rotated by one per
 * round, so no configuration always runs first (cold) or last (warm).
 */
export function rotate<T>(items: readonly T[], r: number): T[] {
  if (items.length === 0) return []
  const k = ((r % items.length) + items.length) % items.length
  return [...items.slice(k), ...items.slice(0, k)]
}
