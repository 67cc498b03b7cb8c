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

/**
 * Does HOST match one of the patterns? `*.example.net` matches exactly one
 * more label (RFC 8461 §4.1), `.example.net` any deeper name (Postfix and the
 * STARTTLS-Everywhere list), anything else the name itself.
 */
export function mxMatches(host: string, patterns: readonly string[]): boolean | undefined {
  if (patterns.length === 0) return undefined
  const h = host.toLowerCase().replace(/\.$/, '')
  return patterns.some((raw) => {
    const p = raw.toLowerCase().replace(/\.$/, '')
    if (p.startsWith('*.')) {
      const rest = p.slice(1)
      return h.endsWith(rest) && !h.slice(0, -rest.length).includes('.') && h.length > rest.length
    }
    if (p.startsWith('.')) return h.endsWith(p) && h.length > p.length
    return h === p
  })
}
