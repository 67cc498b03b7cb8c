/**
 * Whether a domain declares that all its mail is signed: `sig=required` in
 * its `_linksec` TXT record (docs/architecture.md §6.1). The verifier takes this as an
 * injected function so core/policy's resolver can supply it; this default
 * asks DNS itself, caches answers for the record's ttl and, when a refresh
 * fails, keeps a stale "required" (a failed refresh never weakens a policy).
 *
 * The same answer carries `ca=`, the domain CA's fingerprint
 * (core/keys/ca.ts), with whether the answer was DNSSEC-validated (the AD
 * bit from a resolver [resolver] trust_ad believes): `lookup.ca(domain)`.
 * Only a validated `ca=` counts; an unvalidated one is reported and ignored
 * (anyone who can forge the TXT answer could otherwise name their own CA).
 */
import { LookupCache } from '../cache'
import { pickTxtRecord, txtRecordName } from '../levels'
import type { DnsClient } from '../net/types'

export type SignaturePolicy = 'required' | 'optional' | 'unknown'

/** What a domain's `_linksec` record says of its CA. */
export type CaDeclaration =
  | { kind: 'none' }
  | { kind: 'declared'; fingerprint: string; validated: boolean }
  | { kind: 'unknown'; reason: string }

export type SignaturePolicyLookup = ((domain: string, signal?: AbortSignal) => Promise<SignaturePolicy>) & {
  /** The answer when it is cached and live, without I/O (so the caller arms no deadline). */
  peek?: (domain: string) => SignaturePolicy | undefined
  /** `ca=` of the same record; a lookup without it declares no CA for any domain. */
  ca?: (domain: string, signal?: AbortSignal) => Promise<CaDeclaration>
  /** ca() from the cache without I/O; undefined when it would need a lookup. */
  peekCa?: (domain: string) => CaDeclaration | undefined
}

interface TxtFacts {
  signatures: 'required' | 'optional'
  ca?: string
  /** The answer was DNSSEC-validated. */
  validated: boolean
}

const caOf = (f: TxtFacts): CaDeclaration =>
  f.ca ? { kind: 'declared', fingerprint: f.ca, validated: f.validated } : { kind: 'none' }

export interface SignaturePolicyOptions {
  dns: DnsClient
  now?: () => number
  cacheMax?: number
  /** Lifetime of "no record" answers, ms. */
  negativeTtlMs?: number
}

export function createSignaturePolicyLookup(opts: SignaturePolicyOptions): SignaturePolicyLookup {
  const now = opts.now ?? Date.now
  const cache = new LookupCache<TxtFacts>({
    max: opts.cacheMax ?? 10000,
    now,
    // Only a stale "required" or a validated CA still counts (when a refresh fails); other expired entries go.
    keepExpired: (v) => v.signatures === 'required' || (v.ca !== undefined && v.validated),
  })
  const negativeTtl = opts.negativeTtlMs ?? 300_000
  type Failed = { failed: string; stale?: TxtFacts }
  const facts = async (domain: string, signal?: AbortSignal): Promise<TxtFacts | Failed> => {
    const name = txtRecordName(domain)
    try {
      const { value } = await cache.getOrLoad(name, async () => {
        const answer = await opts.dns.query(name, 'TXT', { signal })
        if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN') throw new Error(answer.rcode)
        const texts = answer.records.flatMap((r) => (r.type === 'TXT' ? [r.text] : []))
        const parsed = pickTxtRecord(texts)
        const validated = answer.authenticated
        if (!parsed?.ok) return { value: { signatures: 'optional' as const, validated }, ttlMs: negativeTtl }
        const ttl = Math.min(parsed.value.ttlSeconds, ...answer.records.map((r) => r.ttl)) * 1000
        const { signatures, ca } = parsed.value
        return { value: { signatures, validated, ...(ca ? { ca } : {}) }, ttlMs: Math.max(ttl, 1000) }
      })
      return value
    } catch (e) {
      // A failed refresh never weakens a policy: the stale stricter parts stand (see keepExpired).
      return { failed: e instanceof Error ? e.message : String(e), stale: cache.peek(name)?.value }
    }
  }
  const lookup: SignaturePolicyLookup = async (domain, signal) => {
    const f = await facts(domain, signal)
    if ('failed' in f) return f.stale?.signatures === 'required' ? 'required' : 'unknown'
    return f.signatures
  }
  lookup.peek = (domain) => cache.get(txtRecordName(domain))?.signatures
  lookup.ca = async (domain, signal) => {
    const f = await facts(domain, signal)
    if ('failed' in f)
      return f.stale?.ca && f.stale.validated
        ? caOf(f.stale)
        : { kind: 'unknown', reason: `the ${txtRecordName(domain)} TXT lookup failed (${f.failed})` }
    return caOf(f)
  }
  lookup.peekCa = (domain) => {
    const f = cache.get(txtRecordName(domain))
    return f ? caOf(f) : undefined
  }
  return lookup
}
