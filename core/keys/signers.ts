/**
 * The signer index of a key ring, memoised per ring: openpgp.js validity
 * checks run once, then again only after a short horizon or when a key's
 * expiry passes, so the hot path is a Map lookup and a native verify.
 * Revocations live in the key data itself, so they cannot change without a
 * new ring (the cache's positive ttl bounds that).
 */
import type * as openpgp from 'openpgp'
import { signerEntries, type KeyRing, type SignerEntry } from './material'

/** How long validity results are trusted before openpgp.js checks them again. */
export const RECHECK_MS = 60_000

export interface SignerIndex {
  entries: SignerEntry[]
  /** Entries by upper-case key ID (several keys may share one). */
  byKeyId: Map<string, SignerEntry[]>
  /** Valid until this time (ms); after it the index is rebuilt. */
  until: number
}

const memo = new WeakMap<KeyRing, SignerIndex>()
const building = new WeakMap<KeyRing, Promise<SignerIndex>>()

/** The ring's signers at `nowMs`, memoised. */
export async function signersOf(ring: KeyRing, nowMs: number): Promise<SignerIndex> {
  const m = memo.get(ring)
  if (m && nowMs < m.until) return m
  const pending = building.get(ring)
  if (pending) return pending
  const p = buildIndex(ring, nowMs)
  building.set(ring, p)
  try {
    const idx = await p
    memo.set(ring, idx)
    return idx
  } finally {
    building.delete(ring)
  }
}

/** The memoised index if still fresh (the synchronous fast path). */
export function freshSigners(ring: KeyRing, nowMs: number): SignerIndex | undefined {
  const m = memo.get(ring)
  return m && nowMs < m.until ? m : undefined
}

async function buildIndex(ring: KeyRing, nowMs: number): Promise<SignerIndex> {
  const entries = await signerEntries(ring, new Date(nowMs))
  const byKeyId = new Map<string, SignerEntry[]>()
  for (const e of entries) byKeyId.set(e.keyId, [...(byKeyId.get(e.keyId) ?? []), e])
  let until = nowMs + RECHECK_MS
  for (const key of ring.keys) until = Math.min(until, await expiryOf(key, ring.address, nowMs))
  return { entries, byKeyId, until: Math.max(until, nowMs + 1) }
}

/** The earliest expiry among the key and its subkeys (ms), or Infinity. */
async function expiryOf(key: openpgp.PublicKey, email: string, nowMs: number): Promise<number> {
  let t = Infinity
  const date = new Date(nowMs)
  const asMs = (d: Date | number | null): number => (d instanceof Date ? d.getTime() : Infinity)
  t = Math.min(t, asMs(await key.getExpirationTime({ email }).catch(() => null)))
  for (const s of key.getSubkeys()) t = Math.min(t, asMs(await s.getExpirationTime(date).catch(() => null)))
  return t > nowMs ? t : Infinity
}
