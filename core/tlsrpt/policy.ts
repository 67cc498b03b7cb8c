/**
 * The RFC 8460 §4.4 policy a delivery to a domain was made under, from what
 * linksec believes of the domain (core/policy): `sts` when an MTA-STS policy
 * decided the TLS mode, or is in `mode: testing` (RFC 8461 §5: a testing
 * policy is still the domain's policy; it is reported, with its failures,
 * but never enforced — core/policy/mta-sts-source.ts gives it no TLS mode),
 * or was announced (TXT) but could not be fetched or used, with that
 * failure (RFC 8460 §4.3.2) — `tlsa` for DANE, else `no-policy-found`.
 * TLS reports
 * group their counts by it, and Postfix 3.10+ receives it as socketmap reply
 * attributes (milter/socketmap/tls-policy.ts).
 */
import type { DomainPolicy } from '../policy'
import type { StsPolicyFailure } from '../policy/types'

export type PolicyType = 'sts' | 'tlsa' | 'no-policy-found'

export interface ReportPolicy {
  policyType: PolicyType
  policyDomain: string
  /** MTA-STS: the policy's lines; DANE: empty (Postfix reports TLSA policies itself). */
  policyStrings: string[]
  /** MTA-STS `mx` patterns as published (`*.example.net` form). */
  mxHostPatterns: string[]
  /** Seconds the policy may be cached (MTA-STS max_age). */
  ttlSeconds?: number
  /** An announced MTA-STS policy that could not be used: every session counts as this failure (§4.3.2). */
  failure?: StsPolicyFailure
}

export function reportPolicyOf(p: DomainPolicy): ReportPolicy {
  const base = { policyDomain: p.domain, policyStrings: [], mxHostPatterns: [] }
  if (p.decidedBy === 'dane' && p.tlsMode === 'dane-only') return { ...base, policyType: 'tlsa' }
  const sts = p.sources.find(
    (s) => s.source === 'mta_sts' && (s.outcome === 'found' || s.outcome === 'stale'),
  )
  if ((p.decidedBy !== 'mta_sts' && !(p.decidedBy !== 'dane' && isTesting(sts))) || !sts?.policyStrings) {
    const failed = p.sources.find((s) => s.source === 'mta_sts' && s.outcome === 'none' && s.stsFailure)
    if (failed && p.decidedBy !== 'dane') return { ...base, policyType: 'sts', failure: failed.stsFailure }
    return { ...base, policyType: 'no-policy-found' }
  }
  const maxAge = sts.policyStrings.map((l) => /^max_age:\s*(\d+)$/.exec(l)?.[1]).find((v) => v !== undefined)
  return {
    ...base,
    policyType: 'sts',
    policyStrings: sts.policyStrings,
    mxHostPatterns: sts.mxPatterns ?? [],
    ttlSeconds: maxAge === undefined ? undefined : Number(maxAge),
  }
}

/** An MTA-STS policy in `mode: testing` (RFC 8461 §5): reported under `sts`, never enforced. */
export function isTesting(sts: { policyStrings?: string[] } | undefined): boolean {
  return sts?.policyStrings?.includes('mode: testing') ?? false
}
