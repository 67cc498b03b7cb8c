/**
 * A bounded cache for lookups (policies, declarations, keys): positive and
 * negative entries with their own lifetimes, concurrent lookups of the same
 * key deduplicated, and an optional second level shared by a fleet
 * (docs/architecture.md §6.6: Redis behind the in-process LRU).
 *
 * Memory: the LRU is a Map in recency order (RecencyMap below), so an entry
 * costs what it holds plus ~37 bytes of Map slot, and an empty cache costs
 * nothing whatever its `max` (lru-cache preallocates ~28 bytes per slot of
 * `max` up front: 2.8 MB for each 100,000-entry cache, used or not).
 * Expired entries are swept once a minute unless `keepExpired` says they
 * still matter (a stale stricter policy), so a cache holds what is live
 * rather than the last `max` names ever seen.
 */

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
  /** Whether an expired value is still worth keeping for peek() (default: no, it is swept). */
  keepExpired?: (value: V, now: number) => boolean
}

/** How often expired entries are swept (on the next set()). */
export const SWEEP_EVERY_MS = 60_000

/**
 * A least-recently-used map on a plain Map, whose iteration order is
 * insertion order: a read re-inserts the key at the end, so the first key is
 * always the least recently used, and setting beyond `max` drops it.
 */
export class RecencyMap<K, V> {
  private readonly map = new Map<K, V>()

  constructor(readonly max: number) {}

  get(key: K): V | undefined {
    const v = this.map.get(key)
    if (v !== undefined) {
      this.map.delete(key)
      this.map.set(key, v)
    }
    return v
  }

  /** Without touching recency. */
  peek(key: K): V | undefined {
    return this.map.get(key)
  }

  set(key: K, value: V): void {
    if (this.max <= 0) return
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K)
  }

  delete(key: K): boolean {
    return this.map.delete(key)
  }

  get size(): number {
    return this.map.size
  }

  /** Least recently used first. */
  entries(): IterableIterator<[K, V]> {
    return this.map.entries()
  }
}

export class LookupCache<V extends object | string | number | boolean> {
  private readonly lru: RecencyMap<string, Entry<V>>
  private readonly inflight = new Map<string, Promise<Entry<V>>>()
  private readonly now: () => number
  private sweptAt: number

  constructor(private readonly opts: LookupCacheOptions<V>) {
    this.now = opts.now ?? Date.now
    this.lru = new RecencyMap(Math.max(0, opts.max))
    this.sweptAt = this.now()
  }

  /** The entry even if expired (a failed refresh may keep a stricter stale value). */
  peek(key: string): Entry<V> | undefined {
    return this.lru.get(key)
  }

  /** A live entry, or undefined. */
  get(key: string): V | undefined {
    const e = this.lru.get(key)
    return e && e.expiresAt > this.now() ? e.value : undefined
  }

  set(key: string, value: V, ttlMs: number): Entry<V> {
    const now = this.now()
    const entry = { value, expiresAt: now + Math.max(0, ttlMs) }
    this.lru.set(key, entry)
    if (now - this.sweptAt >= SWEEP_EVERY_MS) this.sweep(now)
    if (this.opts.shared && ttlMs > 0) {
      const encode = this.opts.encode ?? JSON.stringify
      // The shared level is best effort: a Redis outage must not fail mail.
      this.opts.shared.set(this.sharedKey(key), encode(value), ttlMs).catch(() => undefined)
    }
    return entry
  }

  delete(key: string): void {
    this.lru.delete(key)
  }

  get size(): number {
    return this.lru.size
  }

  /** Drops expired entries nobody may need again; returns how many went. */
  sweep(now = this.now()): number {
    this.sweptAt = now
    const keep = this.opts.keepExpired
    let dropped = 0
    for (const [key, e] of this.lru.entries()) {
      if (e.expiresAt > now || keep?.(e.value, now)) continue
      // Deleting the current key while iterating a Map is safe: iteration continues with the next.
      this.lru.delete(key)
      dropped++
    }
    return dropped
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
      this.lru.set(key, fromShared)
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
