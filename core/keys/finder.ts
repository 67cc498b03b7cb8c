/**
 * Finding the key for a sender address (docs/architecture.md §6.4): the local store, then a
 * bounded cache (positive and negative entries with their own lifetimes,
 * concurrent lookups of one address deduplicated, optional fleet level),
 * then WKD and OPENPGPKEY as `[keys] methods` lists them. Temporary failures
 * are never cached. Every step is counted in linksec_key_lookups_total.
 *
 * Memory: the cache keeps a found key as its binary (~0.5-1.5 KB, outside
 * the V8 heap), not parsed: an openpgp.js ring with its signer index costs
 * ~14 KB of heap. Parsed rings are kept for the PARSED_RINGS_MAX addresses
 * used most recently; any other cached key is parsed again on use (~2 ms).
 * "No key published" entries share one value and rebuild their reason.
 */
import { LookupCache, RecencyMap, type SharedCache } from '../cache'
import { LinksecError } from '../errors'
import type { Metrics } from '../metrics'
import type { MailAddress } from './address'
import { readKeyBlob, ringFor, type KeyRing } from './material'
import {
  fetchOpenpgpkey,
  fetchWkd,
  type MethodOutcome,
  type RemoteDeps,
  type RemoteMethod,
  type UnusableResult,
} from './remote'
import type { KeyStore } from './store'

export type KeySource = 'local' | 'cache' | RemoteMethod

export type KeyLookup =
  | { kind: 'found'; ring: KeyRing; source: KeySource }
  | { kind: 'notfound'; reason: string }
  | { kind: 'unusable'; reason: string; result: UnusableResult }
  | { kind: 'temperror'; reason: string }

/** What the cache holds; encodeCached/decodeCached make it JSON for the fleet level. */
type Cached =
  | { kind: 'found'; method: RemoteMethod; key: Buffer }
  /** Without a reason: "no key is published for <address>", rebuilt on read. */
  | { kind: 'notfound'; reason?: string }
  | { kind: 'unusable'; reason: string; result: UnusableResult }

/** Parsed rings kept (per address, most recently used); ~14 KB of heap each. */
export const PARSED_RINGS_MAX = 500

const NOT_PUBLISHED: Cached = Object.freeze({ kind: 'notfound' })

const notPublished = (address: string) => `no OpenPGP key is published for ${address}`

/**
 * A copy in memory of its own: small Buffers are slices of Node's shared 8 KB
 * pool, and a long-lived slice keeps the whole slab alive.
 */
function ownBytes(b: Buffer): Buffer {
  const out = Buffer.alloc(b.length)
  b.copy(out)
  return out
}

/** JSON for the shared level: the key as base64, as fleets stored it before. */
function encodeCached(v: Cached): string {
  return JSON.stringify(v.kind === 'found' ? { ...v, key: v.key.toString('base64') } : v)
}

type CachedJson = Exclude<Cached, { kind: 'found' }> | { kind: 'found'; method: RemoteMethod; key: string }

function decodeCached(s: string): Cached {
  const v = JSON.parse(s) as CachedJson
  // Entries written before the rule in remote.ts said "fail"/"permerror" for an unusable key.
  if (v.kind === 'unusable') return { ...v, result: 'neutral' }
  if (v.kind === 'found')
    return { kind: 'found', method: v.method, key: ownBytes(Buffer.from(v.key, 'base64')) }
  return v.kind === 'notfound' && !v.reason ? NOT_PUBLISHED : v
}

export interface KeyFinderOptions {
  methods: readonly string[]
  store: KeyStore
  remote: RemoteDeps
  metrics?: Metrics
  now?: () => number
  cacheMax: number
  positiveTtlMs: number
  negativeTtlMs: number
  shared?: SharedCache
  /** Parsed rings kept (default PARSED_RINGS_MAX, never more than cacheMax). */
  parsedMax?: number
}

export interface KeyFinder {
  find(a: MailAddress, signal?: AbortSignal): Promise<KeyLookup>
  /** The answer if it is known without I/O (local store or cache), else undefined. */
  peek?(a: MailAddress): KeyLookup | undefined
  readonly store: KeyStore
}

class TemporaryLookup extends LinksecError {
  constructor(reason: string) {
    super('LINKSEC_KEY_TEMPORARY', reason, { temporary: true })
  }
}

export function createKeyFinder(opts: KeyFinderOptions): KeyFinder {
  const now = opts.now ?? Date.now
  const cache = new LookupCache<Cached>({
    max: opts.cacheMax,
    now,
    shared: opts.shared,
    namespace: 'key:',
    encode: encodeCached,
    decode: decodeCached,
  })
  /** Parsed rings by cache key; `of` ties a ring to the cached value it was parsed from. */
  const parsed = new RecencyMap<string, { of: Cached; ring: Promise<KeyRing>; ready?: KeyRing }>(
    Math.min(opts.cacheMax, opts.parsedMax ?? PARSED_RINGS_MAX),
  )
  const count = (method: string, outcome: string) => opts.metrics?.keyLookups.inc({ method, outcome })

  const keepParsed = (key: string, of: Cached, ring: KeyRing) =>
    parsed.set(key, { of, ring: Promise.resolve(ring), ready: ring })

  const ringOf = (c: Extract<Cached, { kind: 'found' }>, key: string): Promise<KeyRing> => {
    const hit = parsed.get(key)
    if (hit?.of === c) return hit.ring
    const slot: { of: Cached; ring: Promise<KeyRing>; ready?: KeyRing } = {
      of: c,
      ring: readKeyBlob(c.key).then((keys) => (slot.ready = ringFor(key, keys))),
    }
    // A blob that no longer parses must not stay as a rejected promise.
    slot.ring.catch(() => parsed.peek(key) === slot && parsed.delete(key))
    parsed.set(key, slot)
    return slot.ring
  }

  /** The cached value as the caller sees it (reasons rebuilt). */
  const answer = (v: Exclude<Cached, { kind: 'found' }>, a: MailAddress): KeyLookup =>
    v.kind === 'notfound' ? { kind: 'notfound', reason: v.reason ?? notPublished(a.address) } : v

  const remote = async (a: MailAddress, signal?: AbortSignal): Promise<{ value: Cached; ttlMs: number }> => {
    const outcomes: MethodOutcome[] = []
    for (const m of opts.methods) {
      if (m === 'local') continue
      const o = await timed(m, () =>
        m === 'wkd' ? fetchWkd(a, opts.remote, signal) : fetchOpenpgpkey(a, opts.remote, signal),
      )
      count(o.method, o.outcome)
      if (o.outcome === 'found') {
        const value: Cached = { kind: 'found', method: o.method, key: ownBytes(o.ring.binary) }
        keepParsed(a.address.toLowerCase(), value, o.ring)
        return { value, ttlMs: opts.positiveTtlMs }
      }
      outcomes.push(o)
    }
    const temp = outcomes.find((o) => o.outcome === 'error')
    if (temp) throw new TemporaryLookup(`${temp.method}: ${temp.reason}`)
    const bad = outcomes.find((o) => o.outcome === 'unusable')
    if (bad?.outcome === 'unusable')
      return {
        value: { kind: 'unusable', reason: bad.reason, result: bad.result },
        ttlMs: opts.negativeTtlMs,
      }
    return { value: NOT_PUBLISHED, ttlMs: opts.negativeTtlMs }
  }

  const timed = async <T>(method: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = process.hrtime.bigint()
    try {
      return await fn()
    } finally {
      opts.metrics?.keyLookupDuration.observe({ method }, Number(process.hrtime.bigint() - t0) / 1e9)
    }
  }

  const find = async (a: MailAddress, signal?: AbortSignal): Promise<KeyLookup> => {
    if (opts.methods.includes('local')) {
      const ring = await opts.store.lookup(a.address)
      if (ring) {
        count('local', 'found')
        return { kind: 'found', ring, source: 'local' }
      }
    }
    const key = a.address.toLowerCase()
    const hit = cache.get(key)
    let value: Cached
    let source: KeySource = 'cache'
    if (hit !== undefined) {
      count('cache', hit.kind)
      value = hit
    } else {
      try {
        const r = await cache.getOrLoad(key, () => remote(a, signal))
        value = r.value
        if (!r.cached && value.kind === 'found') source = value.method
      } catch (e) {
        if (e instanceof TemporaryLookup) return { kind: 'temperror', reason: e.message }
        throw e
      }
    }
    if (value.kind !== 'found') return answer(value, a)
    return { kind: 'found', ring: await ringOf(value, key), source }
  }

  const peek = (a: MailAddress): KeyLookup | undefined => {
    if (opts.methods.includes('local')) {
      const local = opts.store.peek(a.address)
      if (local === undefined) return undefined
      if (local) {
        count('local', 'found')
        return { kind: 'found', ring: local, source: 'local' }
      }
    }
    const key = a.address.toLowerCase()
    const hit = cache.get(key)
    if (hit === undefined) return undefined
    if (hit.kind !== 'found') {
      count('cache', hit.kind)
      return answer(hit, a)
    }
    const p = parsed.get(key)
    const ring = p?.of === hit ? p.ready : undefined
    if (!ring) return undefined
    count('cache', 'found')
    return { kind: 'found', ring, source: 'cache' }
  }

  return { find, peek, store: opts.store }
}
