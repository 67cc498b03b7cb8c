/**
 * Finding the key for a sender address (DESIGN §4): the local store, then a
 * bounded cache (positive and negative entries with their own lifetimes,
 * concurrent lookups of one address deduplicated, optional fleet level),
 * then WKD and OPENPGPKEY as `[keys] methods` lists them. Temporary failures
 * are never cached. Every step is counted in linksec_key_lookups_total.
 */
import { LookupCache, type SharedCache } from '../cache'
import { LinksecError } from '../errors'
import type { Metrics } from '../metrics'
import type { MailAddress } from './address'
import { readKeyBlob, ringFor, type KeyRing } from './material'
import { fetchOpenpgpkey, fetchWkd, type MethodOutcome, type RemoteDeps, type RemoteMethod } from './remote'
import type { KeyStore } from './store'

export type KeySource = 'local' | 'cache' | RemoteMethod

export type KeyLookup =
  | { kind: 'found'; ring: KeyRing; source: KeySource }
  | { kind: 'notfound'; reason: string }
  | { kind: 'unusable'; reason: string; result: 'fail' | 'permerror' }
  | { kind: 'temperror'; reason: string }

/** What the cache holds: JSON-safe, so a fleet can share it. */
type Cached =
  | { kind: 'found'; method: RemoteMethod; key: string }
  | { kind: 'notfound'; reason: string }
  | { kind: 'unusable'; reason: string; result: 'fail' | 'permerror' }

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
  const cache = new LookupCache<Cached>({ max: opts.cacheMax, now, shared: opts.shared, namespace: 'key:' })
  const rings = new WeakMap<Cached, Promise<KeyRing>>()
  /** Rings already parsed, for the synchronous peek(). */
  const ready = new WeakMap<Cached, KeyRing>()
  const count = (method: string, outcome: string) => opts.metrics?.keyLookups.inc({ method, outcome })

  const ringOf = (c: Extract<Cached, { kind: 'found' }>, address: string): Promise<KeyRing> => {
    let p = rings.get(c)
    if (!p) {
      p = readKeyBlob(Buffer.from(c.key, 'base64')).then((keys) => {
        const ring = ringFor(address, keys)
        ready.set(c, ring)
        return ring
      })
      rings.set(c, p)
    }
    return p
  }

  const remote = async (a: MailAddress, signal?: AbortSignal): Promise<{ value: Cached; ttlMs: number }> => {
    const outcomes: MethodOutcome[] = []
    for (const m of opts.methods) {
      if (m === 'local') continue
      const o = await timed(m, () =>
        m === 'wkd' ? fetchWkd(a, opts.remote, signal) : fetchOpenpgpkey(a, opts.remote, signal),
      )
      count(o.method, o.outcome)
      if (o.outcome === 'found') {
        const value: Cached = { kind: 'found', method: o.method, key: o.ring.binary.toString('base64') }
        rings.set(value, Promise.resolve(o.ring))
        ready.set(value, o.ring)
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
    return {
      value: { kind: 'notfound', reason: `no OpenPGP key is published for ${a.address}` },
      ttlMs: opts.negativeTtlMs,
    }
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
    if (value.kind !== 'found') return value
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
    const hit = cache.get(a.address.toLowerCase())
    if (hit === undefined) return undefined
    if (hit.kind !== 'found') {
      count('cache', hit.kind)
      return hit
    }
    const ring = ready.get(hit)
    if (!ring) return undefined
    count('cache', 'found')
    return { kind: 'found', ring, source: 'cache' }
  }

  return { find, peek, store: opts.store }
}
