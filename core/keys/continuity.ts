/**
 * Key continuity (docs/architecture.md §6.7): the primary-key fingerprints
 * recently seen making good signatures for each sender address. A signature
 * by a key not among them is a key change; core/verify/continuity.ts decides
 * whether the change is explained (the domain CA certifies the new key, or
 * the domain still publishes a remembered key beside it: a rotation
 * overlap) and what happens when it is not.
 *
 * Beside the fingerprints, the newest key that the sender domain's counted
 * CA certified is kept (its bytes) for CERTIFIED_GRACE_MS after it last
 * made a good signature: when the domain's WKD then serves another key (a
 * swap by whoever took the web server, or a rotation without overlap), mail
 * the certified key signed before the change still verifies against it,
 * its certification checked again with the CA key as published now.
 *
 * Bounded: at most `max` addresses in memory (least recently used dropped),
 * at most KEEP fingerprints per address, each entry forgotten TTL_MS after
 * it was last seen. With [redis] url set the entries are shared by the
 * fleet (core/redis.ts), so a change is noticed by whichever host sees it;
 * Redis being away only narrows what is remembered to this host.
 */
import { RecencyMap, type SharedCache } from '../cache'
import { addressKey } from './address'

/** Fingerprints kept per address (a rotation overlap holds two; a few more absorb reordering). */
export const KEEP = 4
/** How long an address's fingerprints are remembered after the last good signature (ms). */
export const TTL_MS = 400 * 24 * 3600_000
/** A remembered fingerprint's last-seen time is written again at most this often (ms), sparing Redis a write per message. */
const REFRESH_MS = 24 * 3600_000

/** How long a CA-certified key is kept after its last good signature (ms): the receiver's rotation overlap. */
export const CERTIFIED_GRACE_MS = 7 * 24 * 3600_000

/** A CA-certified key kept for an address. */
export interface CertifiedKey {
  fpr: string
  /** The transferable public key, binary. */
  key: Buffer
  /** Kept until then, ms since the epoch. */
  until: number
}

export interface SeenKey {
  /** Upper-case hex primary-key fingerprint. */
  fpr: string
  /** Last good signature by it, ms since the epoch. */
  seen: number
}

export interface ContinuityOptions {
  max: number
  now: () => number
  shared?: SharedCache
}

export class KeyContinuity {
  private readonly local: RecencyMap<string, SeenKey[]>
  private readonly certified: RecencyMap<string, CertifiedKey>

  constructor(private readonly opts: ContinuityOptions) {
    this.local = new RecencyMap(opts.max)
    this.certified = new RecencyMap(opts.max)
  }

  /** The CA-certified key kept for `address`, if it is still within its grace. */
  async certifiedKey(address: string): Promise<CertifiedKey | undefined> {
    const a = addressKey(address)
    let k = this.certified.get(a)
    if (!k && this.opts.shared) {
      const raw = await this.opts.shared.get(`certified:${a}`).catch(() => undefined)
      k = raw ? decodeCertified(raw) : undefined
      if (k) this.certified.set(a, k)
    }
    return k && k.until > this.opts.now() ? k : undefined
  }

  /** Keeps `key` (binary) as the address's CA-certified key, for CERTIFIED_GRACE_MS from now. */
  async rememberCertified(address: string, fpr: string, key: Buffer): Promise<void> {
    const a = addressKey(address)
    const now = this.opts.now()
    const held = this.certified.get(a)
    if (
      held &&
      held.fpr === fpr &&
      held.key.equals(key) &&
      held.until - now > CERTIFIED_GRACE_MS - REFRESH_MS
    )
      return
    const entry = { fpr, key, until: now + CERTIFIED_GRACE_MS }
    this.certified.set(a, entry)
    const json = JSON.stringify({ fpr, key: key.toString('base64'), until: entry.until })
    await this.opts.shared?.set(`certified:${a}`, json, CERTIFIED_GRACE_MS).catch(() => undefined)
  }

  /**
   * What is remembered for `address`, newest first; [] when nothing (or
   * everything expired). `fresh` reads the fleet's copy even when this host
   * has one (another host may have seen a newer key).
   */
  async seen(address: string, opts: { fresh?: boolean } = {}): Promise<SeenKey[]> {
    const a = addressKey(address)
    const now = this.opts.now()
    let list = this.local.get(a)
    if ((!list || opts.fresh) && this.opts.shared) {
      const raw = await this.opts.shared.get(`continuity:${a}`).catch(() => undefined)
      const remote = raw ? decode(raw) : undefined
      if (remote) {
        list = merge(list ?? [], remote)
        this.local.set(a, list)
      }
    }
    return (list ?? []).filter((k) => now - k.seen < TTL_MS)
  }

  /** Records a good signature by `fpr` for `address`. */
  async remember(address: string, fpr: string): Promise<void> {
    const a = addressKey(address)
    const now = this.opts.now()
    const before = await this.seen(a)
    const hit = before.find((k) => k.fpr === fpr)
    if (hit && before[0] === hit && now - hit.seen < REFRESH_MS) return
    // Merged with the fleet's copy first, so one host's write does not drop what another saw.
    const merged = this.opts.shared ? await this.seen(a, { fresh: true }) : before
    const list = [{ fpr, seen: now }, ...merged.filter((k) => k.fpr !== fpr)].slice(0, KEEP)
    this.local.set(a, list)
    await this.opts.shared?.set(`continuity:${a}`, JSON.stringify(list), TTL_MS).catch(() => undefined)
  }
}

/** Both lists as one: each fingerprint once with its latest sighting, newest first. */
function merge(a: SeenKey[], b: SeenKey[]): SeenKey[] {
  const by = new Map<string, number>()
  for (const k of [...a, ...b]) by.set(k.fpr, Math.max(by.get(k.fpr) ?? 0, k.seen))
  return [...by]
    .map(([fpr, seen]) => ({ fpr, seen }))
    .sort((x, y) => y.seen - x.seen)
    .slice(0, KEEP)
}

function decodeCertified(raw: string): CertifiedKey | undefined {
  try {
    const v = JSON.parse(raw) as { fpr?: unknown; key?: unknown; until?: unknown }
    if (typeof v.fpr !== 'string' || typeof v.key !== 'string' || typeof v.until !== 'number')
      return undefined
    return { fpr: v.fpr, key: Buffer.from(v.key, 'base64'), until: v.until }
  } catch {
    return undefined
  }
}

function decode(raw: string): SeenKey[] | undefined {
  try {
    const v: unknown = JSON.parse(raw)
    if (!Array.isArray(v)) return undefined
    const out = v.filter(
      (k): k is SeenKey =>
        typeof k === 'object' &&
        k !== null &&
        typeof (k as SeenKey).fpr === 'string' &&
        /^[0-9A-F]{40,64}$/.test((k as SeenKey).fpr) &&
        typeof (k as SeenKey).seen === 'number',
    )
    return out.slice(0, KEEP)
  } catch {
    return undefined
  }
}
