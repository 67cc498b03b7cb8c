/**
 * Operations measured side by side in one process: each op runs back to
 * back in short slices taken in turn, so a shared machine's load swings hit
 * every op alike (the verify and sign benchmarks).
 */

export type Op = () => unknown

/** Runs `op` back to back for `ms` (at most maxOps times): [ops, wall seconds, CPU seconds of all threads]. */
export async function slice(op: Op, ms: number, maxOps: number): Promise<[number, number, number]> {
  const cpu0 = process.cpuUsage()
  const start = process.hrtime.bigint()
  const end = start + BigInt(Math.round(ms * 1e6))
  let n = 0
  while (n < maxOps && process.hrtime.bigint() < end) {
    const r = op()
    if (r instanceof Promise) await r
    n++
  }
  const wall = Number(process.hrtime.bigint() - start) / 1e9
  const cpu = process.cpuUsage(cpu0)
  return [n, wall, (cpu.user + cpu.system) / 1e6]
}

export interface Rate {
  /** Operations per wall-clock second, one at a time. */
  perSecond: number
  /** Operations per CPU second of all the process's threads (counts work moved off the event loop too). */
  perCpuSecond: number
}

/**
 * Operations per second of each op over `ms`, measured in 50 ms slices taken
 * in turn, so a shared machine's load swings hit every op alike.
 */
export async function interleaved(ops: [string, Op, number][], ms: number): Promise<Map<string, Rate>> {
  const SLICE_MS = 50
  const totals = new Map(ops.map(([n]) => [n, [0, 0, 0]]))
  for (let t = 0; t < ms; t += SLICE_MS) {
    for (const [name, op, max] of ops) {
      const acc = totals.get(name)!
      if (acc[0]! >= max) continue
      const [n, sec, cpu] = await slice(op, SLICE_MS, max - acc[0]!)
      acc[0]! += n
      acc[1]! += sec
      acc[2]! += cpu
    }
  }
  return new Map(
    [...totals].map(([n, [ops_, sec, cpu]]) => [n, { perSecond: ops_! / sec!, perCpuSecond: ops_! / cpu! }]),
  )
}
