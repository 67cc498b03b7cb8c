/**
 * What every part of linksec shares in one process: the validated config, a
 * logger, the metrics registry and a clock. Subsystems build their own
 * services from it (e.g. core/policy's resolver, core/keys' finder), memoised
 * per runtime, so adapters only pass a Runtime around.
 */
import type { LinksecConfig } from './config'
import { createLogger, type Logger } from './log'
import { createMetrics, type Metrics } from './metrics'

export interface Runtime {
  readonly config: LinksecConfig
  readonly log: Logger
  readonly metrics: Metrics
  /** Milliseconds since the epoch; injected so caches and ttls are testable. */
  readonly now: () => number
}

export function createRuntime(
  config: LinksecConfig,
  opts: { log?: Logger; metrics?: Metrics; now?: () => number } = {},
): Runtime {
  return {
    config,
    log: opts.log ?? createLogger({ level: config.log.level, format: config.log.format }),
    metrics: opts.metrics ?? createMetrics(),
    now: opts.now ?? Date.now,
  }
}

/** Memoises one service per runtime (a WeakMap per factory). */
export function perRuntime<T>(factory: (rt: Runtime) => T): (rt: Runtime) => T {
  const cache = new WeakMap<Runtime, T>()
  return (rt) => {
    let v = cache.get(rt)
    if (v === undefined) {
      v = factory(rt)
      cache.set(rt, v)
    }
    return v
  }
}
