/**
 * Rate-limited logging for events an attacker can repeat at will (refused
 * connections, closed sessions, passed bounds): the first of each kind is
 * logged, then at most one line per interval, carrying how many were
 * suppressed since the last one. The counters (metrics) still count each.
 */
import type { LogFields } from './log'

export type LogLimiter = (key: string, write: (extra: LogFields) => void) => void

/** Keys should be a small fixed set (a reason label), as each keeps one entry. */
export function createLogLimiter(intervalMs = 10_000, now: () => number = Date.now): LogLimiter {
  const seen = new Map<string, { until: number; suppressed: number }>()
  return (key, write) => {
    const t = now()
    const s = seen.get(key)
    if (s && t < s.until) {
      s.suppressed++
      return
    }
    write(s?.suppressed ? { suppressed: s.suppressed } : {})
    seen.set(key, { until: t + intervalMs, suppressed: 0 })
  }
}
