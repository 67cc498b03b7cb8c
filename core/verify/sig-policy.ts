/**
 * Whether a domain declares that all its mail is signed: `sig=required` in
 * its `_linksec` TXT record (docs/architecture.md §6.1). The verifier takes this as an
 * injected function so core/policy's resolver can supply it; this default
 * asks DNS itself, caches answers for the record's ttl and, when a refresh
 * fails, keeps a stale "required" (a failed refresh never weakens a policy).
 */
import { LookupCache } from '../cache'
import { pickTxtRecord, txtRecordName } from '../levels'
import type { DnsClient } from '../net/types'

export type SignaturePolicy = 'required' | 'optional' | 'unknown'

export type SignaturePolicyLookup = ((domain: string, signal?: AbortSignal) => Promise<SignaturePolicy>) & {
  /** The answer when it is cached and live, without I/O (so the caller arms no deadline). */
  peek?: (domain: string) => SignaturePolicy | undefined
}

export interface SignaturePolicyOptions {
  dns: DnsClient
  now?: () => number
  cacheMax?: number
  /** Lifetime of "no record" answers, ms. */
  negativeTtlMs?: number
}

export function createSignaturePolicyLookup(opts: SignaturePolicyOptions): SignaturePolicyLookup {
  const now = opts.now ?? Date.now
  const cache = new LookupCache<'required' | 'optional'>({
    max: opts.cacheMax ?? 10000,
    now,
    // Only a stale "required" still counts (when a refresh fails); expired "optional" entries go.
    keepExpired: (v) => v === 'required',
  })
  const negativeTtl = opts.negativeTtlMs ?? 300_000
  const lookup: SignaturePolicyLookup = async (domain, signal) => {
    const name = txtRecordName(domain)
    try {
      const { value } = await cache.getOrLoad(name, async () => {
        const answer = await opts.dns.query(name, 'TXT', { signal })
        if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN') throw new Error(answer.rcode)
        const texts = answer.records.flatMap((r) => (r.type === 'TXT' ? [r.text] : []))
        const parsed = pickTxtRecord(texts)
        if (!parsed?.ok) return { value: 'optional' as const, ttlMs: negativeTtl }
        const ttl = Math.min(parsed.value.ttlSeconds, ...answer.records.map((r) => r.ttl)) * 1000
        return { value: parsed.value.signatures, ttlMs: Math.max(ttl, 1000) }
      })
      return value
    } catch {
      return cache.peek(name)?.value === 'required' ? 'required' : 'unknown'
    }
  }
  lookup.peek = (domain) => cache.get(txtRecordName(domain))
  return lookup
}
