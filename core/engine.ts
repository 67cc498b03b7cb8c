/**
 * The composition root: one Engine per process owns the long-lived services
 * (DNS and HTTPS clients, the Redis client, the policy resolver and its
 * learned declarations, the key finder and its cache, health) and hands out
 * a Runtime (config, log, metrics, clock) that names it.
 *
 * A reload (`reconfigure(config)`) gives a new Runtime on the same Engine.
 * Each service is built from a few config sections (its `key`): it survives
 * a reload that leaves them alone, caches and learned declarations included;
 * one whose sections changed is closed (the Redis client too) and built
 * again on next use from the new config. `close()` at shutdown closes all.
 * DNS, HTTPS and the clock can be injected (tests, `EngineDeps`).
 */
import type { LinksecConfig } from './config'
import { describeError } from './errors'
import { createLogger, type Logger } from './log'
import { createMetrics, type Metrics } from './metrics'
import type { DnsClient, HttpsClient } from './net/types'
import type { Runtime } from './runtime'

export interface EngineDeps {
  log?: Logger
  metrics?: Metrics
  /** Milliseconds since the epoch. */
  now?: () => number
  /** Replaces the DNS client built from [resolver]. */
  dns?: DnsClient
  /** Replaces the HTTPS client built from [net]. */
  https?: HttpsClient
}

/** One long-lived service of the engine. */
export interface EngineService<T> {
  readonly name: string
  /** What the service is built from; a reload that changes it replaces the service. */
  key(config: LinksecConfig): string
  build(rt: Runtime): T
  close?(value: T): Promise<void> | void
}

interface Slot {
  key: string
  value: unknown
  /** The configuration the key was last checked against (configs are frozen: core/config/parse.ts). */
  config: LinksecConfig
}

export class Engine {
  private rt: Runtime
  private readonly slots = new Map<EngineService<unknown>, Slot>()
  private closed = false

  constructor(
    config: LinksecConfig,
    readonly deps: EngineDeps = {},
  ) {
    const log = deps.log ?? createLogger({ level: config.log.level, format: config.log.format })
    this.rt = this.runtimeFor(config, log)
  }

  /** The Runtime of the configuration in force. */
  get runtime(): Runtime {
    return this.rt
  }

  /**
   * Takes a new configuration: a new Runtime on this engine. Services built
   * from sections that changed are closed now; the rest keep their state.
   */
  async reconfigure(config: LinksecConfig, log: Logger = this.rt.log): Promise<Runtime> {
    this.rt = this.runtimeFor(config, log)
    const stale = [...this.slots].filter(([spec, slot]) => spec.key(config) !== slot.key)
    for (const [spec] of stale) this.slots.delete(spec)
    await Promise.all(stale.map(([spec, slot]) => this.closeOne(spec, slot)))
    return this.rt
  }

  /**
   * The service for the configuration in force, built on first use. Steps
   * call this per message: the key (a JSON text of config sections) is
   * computed once per configuration, not per call.
   */
  service<T>(spec: EngineService<T>): T {
    const config = this.rt.config
    const slot = this.slots.get(spec)
    if (slot?.config === config) return slot.value as T
    const key = spec.key(config)
    if (slot && slot.key === key) {
      slot.config = config
      return slot.value as T
    }
    if (this.closed) throw new Error(`the engine is closed; ${spec.name} is not available`)
    const value = spec.build(this.rt)
    this.slots.set(spec, { key, value, config })
    return value
  }

  /** Closes every service (Redis included), newest first. */
  async close(): Promise<void> {
    this.closed = true
    const all = [...this.slots].reverse()
    this.slots.clear()
    for (const [spec, slot] of all) await this.closeOne(spec, slot)
  }

  private async closeOne(spec: EngineService<unknown>, slot: Slot): Promise<void> {
    try {
      await spec.close?.(slot.value)
    } catch (e) {
      this.rt.log.warn('service did not close cleanly', { service: spec.name, error: describeError(e) })
    }
  }

  private runtimeFor(config: LinksecConfig, log: Logger): Runtime {
    return {
      config,
      log,
      metrics: this.deps.metrics ?? (this.rt as Runtime | undefined)?.metrics ?? createMetrics(),
      now: this.deps.now ?? Date.now,
      engine: this,
    }
  }
}

/** A service accessor: `(rt) => T`, memoised in the runtime's engine. */
export function engineService<T>(spec: EngineService<T>): (rt: Runtime) => T {
  return (rt) => rt.engine.service(spec)
}

/** The key of a service built from these config sections (and the config directory, for relative paths). */
export function sectionsKey(config: LinksecConfig, sections: readonly (keyof LinksecConfig)[]): string {
  return JSON.stringify([config.dir, ...sections.map((s) => config[s])])
}
