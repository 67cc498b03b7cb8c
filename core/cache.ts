/**
 * A bounded cache for lookups (policies, declarations, keys): positive and
 * negative entries with their own lifetimes, concurrent lookups of the same
 * key deduplicated, and an optional second level shared by a fleet
 * (DESIGN §7: Redis behind the in-process LRU).
 */
import { LRUCache } from 'lru-cache'

export interface Entry<V> {
  value: V
  /** Absolute expiry, ms since epoch. */
  expiresAt: number
}

/** A fleet-wide second level (e.g. Redis); values must survive JSON. */
export interface SharedCache {
  get(key: string): Promise<string | undefined>
  set(key: string, value: string, ttlMs: number): Promise<void>
}

export interface LookupCacheOptions<V> {
  max: number
  now?: () => number
  shared?: SharedCache
  /** Namespace for keys in the shared level, e.g. "policy:". */
  namespace?: string
  encode?: (v: V) => string
  decode?: (s: string) => V
}

export class LookupCache<V extends NonNullable<unknown>> {
  private readonly lru: LRUCache<string, Entry<V>> | undefined
  private readonly inflight = new Map<string, Promise<Entry<V>>>()
  private readonly now: () => number

  constructor(private readonly opts: LookupCacheOptions<V>) {
    this.now = opts.now ?? Date.now
    this.lru = opts.max > 0 ? new LRUCache({ max: opts.max }) : undefined
  }

  /** The entry even if expired (a failed refresh may keep a stricter stale value). */
  peek(key: string): Entry<V> | undefined {
    return this.lru?.get(key)
  }

  /** A live entry, or undefined. */
  get(key: string): V | undefined {
    const e = this.lru?.get(key)
    return e && e.expiresAt > this.now() ? e.value : undefined
  }

  set(key: string, value: V, ttlMs: number): Entry<V> {
    const entry = { value, expiresAt: this.now() + Math.max(0, ttlMs) }
    this.lru?.set(key, entry)
    if (this.opts.shared && ttlMs > 0) {
      const encode = this.opts.encode ?? JSON.stringify
      // The shared level is best effort: a Redis outage must not fail mail.
      this.opts.shared.set(this.sharedKey(key), encode(value), ttlMs).catch(() => undefined)
    }
    return entry
  }

  delete(key: string): void {
    this.lru?.delete(key)
  }

  get size(): number {
    return this.lru?.size ?? 0
  }

  /**
   * Returns a live entry, else runs `load` once for all concurrent callers of
   * the same key. `load` returns the value and its ttl in ms.
   */
  async getOrLoad(
    key: string,
    load: () => Promise<{ value: V; ttlMs: number }>,
  ): Promise<{ value: V; cached: boolean }> {
    const hit = this.get(key)
    if (hit !== undefined) return { value: hit, cached: true }
    const pending = this.inflight.get(key)
    if (pending) return { value: (await pending).value, cached: true }
    const p = this.loadThrough(key, load)
    this.inflight.set(key, p)
    try {
      return { value: (await p).value, cached: false }
    } finally {
      this.inflight.delete(key)
    }
  }

  private async loadThrough(
    key: string,
    load: () => Promise<{ value: V; ttlMs: number }>,
  ): Promise<Entry<V>> {
    const fromShared = await this.readShared(key)
    if (fromShared) {
      this.lru?.set(key, fromShared)
      return fromShared
    }
    const { value, ttlMs } = await load()
    return this.set(key, value, ttlMs)
  }

  private async readShared(key: string): Promise<Entry<V> | undefined> {
    if (!this.opts.shared) return undefined
    try {
      const s = await this.opts.shared.get(this.sharedKey(key))
      if (s === undefined) return undefined
      const decode = this.opts.decode ?? ((x: string) => JSON.parse(x) as V)
      // The shared level stores its own ttl; locally keep it briefly.
      return { value: decode(s), expiresAt: this.now() + 60_000 }
    } catch {
      return undefined
    }
  }

  private sharedKey(key: string): string {
    return `${this.opts.namespace ?? ''}${key}`
  }
}
