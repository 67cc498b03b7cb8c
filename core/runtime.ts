/**
 * What every part of linksec is handed: the validated config, a logger, the
 * metrics registry, a clock, and the Engine (core/engine.ts) that owns the
 * long-lived services and survives reloads. Subsystems reach their services
 * through the engine (e.g. core/policy's resolver, core/keys' finder), so
 * adapters only pass a Runtime around.
 */
import type { LinksecConfig } from './config'
import { Engine, type EngineDeps } from './engine'
import type { Logger } from './log'
import type { Metrics } from './metrics'

export interface Runtime {
  readonly config: LinksecConfig
  readonly log: Logger
  readonly metrics: Metrics
  /** Milliseconds since the epoch; injected so caches and ttls are testable. */
  readonly now: () => number
  readonly engine: Engine
}

/** A Runtime on an engine of its own (commands, tests); a long-running process keeps one Engine instead. */
export function createRuntime(config: LinksecConfig, opts: EngineDeps = {}): Runtime {
  return new Engine(config, opts).runtime
}
