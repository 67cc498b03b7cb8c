/**
 * The policy engine's DomainPolicy (core/policy) as the enforcement rule
 * sees it: a declared level or none, whether TLS and a verified certificate
 * are required, and the MX names a verified certificate must belong to.
 */
import type { DomainPolicy, SourceAnswer } from '../policy/types'
import type { PeerPolicy } from './hop'

export interface PeerPolicyWithMx extends PeerPolicy {
  /** MTA-STS `*.x` / static-list `.x` / exact names; empty = no list applies. */
  mxPatterns: string[]
}

const counts = (a: SourceAnswer) => (a.outcome === 'found' || a.outcome === 'stale') && a.level !== undefined

export function peerPolicyOf(p: DomainPolicy): PeerPolicyWithMx {
  const vouching = p.sources.filter(counts).sort((a, b) => (b.level ?? 0) - (a.level ?? 0))
  const best = vouching[0]
  return {
    domain: p.domain,
    level: best ? p.level : undefined,
    source: best?.source,
    // combine(): any declared level >= 1 already means at least `encrypt`.
    tlsRequired: p.tlsMode !== 'none' && p.tlsMode !== 'may',
    // DANE-only certificates are checked against TLSA, which the Haraka
    // adapter cannot do; there TLS is mandatory and WebPKI is not asked for.
    certificateRequired: p.tlsMode === 'verify' || p.tlsMode === 'secure',
    uncertain: p.temporaryFailure,
    mxPatterns: p.mxPatterns,
  }
}
