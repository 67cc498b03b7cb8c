/**
 * Declarations learned from peers (docs/architecture.md §6.1): `LINKSEC <N> ttl=<s>` in an
 * EHLO reply, or `LINKSEC=<N>` in a 220 banner. Each is remembered for its
 * ttl, in a bounded LRU ([policy] learned_max) and, when a fleet shares
 * Redis, in the shared level too. A weaker declaration does not replace a
 * stronger one still within its ttl: the peer promised that much for that
 * long, and a plaintext EHLO can be rewritten by anyone on the path.
 */
import { isLevel, type Declaration, type Level } from '../levels'
import { RecencyMap, SWEEP_EVERY_MS, type SharedCache } from '../cache'
import type { SourceAnswer } from './types'

export type LearnedVia = 'ehlo' | 'banner'

export interface LearnedDeclaration {
  level: Level
  via: LearnedVia
  learnedAt: number
  expiresAt: number
}

export type LearnOutcome = 'stored' | 'kept_stronger' | 'not_kept'

/** After a miss in the shared level, do not ask it again for this long (the hot path stays local). */
const SHARED_NEGATIVE_MS = 30_000

export interface LearnedStoreOptions {
  max: number
  now: () => number
  shared?: SharedCache
  /** Key prefix inside the shared level. */
  namespace?: string
}

export class LearnedStore {
  private readonly lru: RecencyMap<string, LearnedDeclaration> | undefined
  private readonly misses: RecencyMap<string, number> | undefined
  private sweptAt: number

  constructor(private readonly opts: LearnedStoreOptions) {
    this.lru = opts.max > 0 ? new RecencyMap(opts.max) : undefined
    this.misses = opts.shared && opts.max > 0 ? new RecencyMap(opts.max) : undefined
    this.sweptAt = opts.now()
  }

  /** Remembers a declaration for its ttl. A ttl of 0 (a banner without ttl) is for the session only. */
  learn(name: string, d: Declaration, via: LearnedVia): LearnOutcome {
    if (!this.lru || d.ttlSeconds <= 0) return 'not_kept'
    const now = this.opts.now()
    const old = this.live(name, now)
    if (old && old.level > d.level) return 'kept_stronger'
    const entry: LearnedDeclaration = {
      level: d.level,
      via,
      learnedAt: now,
      expiresAt: now + d.ttlSeconds * 1000,
    }
    this.lru.set(name, entry)
    this.misses?.delete(name)
    if (now - this.sweptAt >= SWEEP_EVERY_MS) this.sweep(now)
    // Best effort: a Redis outage must not fail mail.
    this.opts.shared
      ?.set(this.sharedKey(name), JSON.stringify(entry), d.ttlSeconds * 1000)
      .catch(() => undefined)
    return 'stored'
  }

  /** The live declaration for NAME from this process only. */
  get(name: string): LearnedDeclaration | undefined {
    return this.live(name, this.opts.now())
  }

  /** The live declaration, asking the shared level on a local miss. */
  async lookup(name: string): Promise<LearnedDeclaration | undefined> {
    const now = this.opts.now()
    const local = this.live(name, now)
    if (local || !this.opts.shared || !this.lru) return local
    if ((this.misses?.get(name) ?? 0) > now) return undefined
    const fromShared = await this.readShared(name, now)
    if (fromShared) this.lru.set(name, fromShared)
    else this.misses?.set(name, now + SHARED_NEGATIVE_MS)
    return fromShared
  }

  get size(): number {
    return this.lru?.size ?? 0
  }

  /** The live declarations this process holds (GET /v1/domains, `linksec domains export --server`). */
  snapshot(now = this.opts.now()): [string, LearnedDeclaration][] {
    return [...(this.lru?.entries() ?? [])].filter(([, e]) => e.expiresAt > now)
  }

  /** Drops expired declarations (and expired shared-level misses); returns how many went. */
  sweep(now = this.opts.now()): number {
    this.sweptAt = now
    let dropped = 0
    for (const [name, e] of this.lru?.entries() ?? []) {
      if (e.expiresAt > now) continue
      this.lru!.delete(name)
      dropped++
    }
    for (const [name, until] of this.misses?.entries() ?? []) if (until <= now) this.misses!.delete(name)
    return dropped
  }

  private live(name: string, now: number): LearnedDeclaration | undefined {
    const e = this.lru?.get(name)
    return e && e.expiresAt > now ? e : undefined
  }

  private async readShared(name: string, now: number): Promise<LearnedDeclaration | undefined> {
    try {
      const s = await this.opts.shared!.get(this.sharedKey(name))
      if (s === undefined) return undefined
      const v = JSON.parse(s) as Partial<LearnedDeclaration>
      const valid =
        typeof v.level === 'number' &&
        isLevel(v.level) &&
        typeof v.expiresAt === 'number' &&
        v.expiresAt > now
      return valid ? (v as LearnedDeclaration) : undefined
    } catch {
      return undefined
    }
  }

  private sharedKey(name: string): string {
    return `${this.opts.namespace ?? 'learned:'}${name}`
  }
}

/** The learned source's answer for the combination. */
export function learnedAnswer(name: string, d: LearnedDeclaration | undefined): SourceAnswer {
  if (!d) return { source: 'learned', outcome: 'none', reason: `no declaration learned from ${name}` }
  return {
    source: 'learned',
    outcome: 'found',
    level: d.level,
    tlsMode: d.level >= 1 ? 'encrypt' : undefined,
    expiresAt: d.expiresAt,
    reason: `${d.via === 'ehlo' ? 'EHLO' : 'banner'} declared level ${d.level} at ${new Date(d.learnedAt).toISOString()}`,
  }
}
