/**
 * What linksec believes of a domain (docs/architecture.md §6.2): the effective level, the TLS
 * mode to require when delivering there, the MX patterns that mode checks,
 * and every source's own answer with its reason, so operators can see why.
 */
import type { Level } from '../levels'

/** Where a belief came from, strongest operator fact first. */
export type PolicySource = 'static' | 'dane' | 'mta_sts' | 'txt' | 'learned'
export const POLICY_SOURCES: readonly PolicySource[] = ['static', 'dane', 'mta_sts', 'txt', 'learned']

/** Postfix smtp_tls_security_level values this engine can ask for, weakest first. */
export type TlsMode = 'none' | 'may' | 'encrypt' | 'verify' | 'secure' | 'dane-only'
export const TLS_MODE_RANK: Readonly<Record<TlsMode, number>> = {
  none: 0,
  may: 1,
  encrypt: 2,
  verify: 3,
  secure: 4,
  'dane-only': 5,
}

/**
 * found    the source answered now and is trusted
 * stale    the refresh failed (or the record went away) and the last good answer
 *          is kept because it is still within its lifetime
 * none     the source has nothing to say (no record, not listed, not enforced)
 * error    the lookup failed and nothing valid is remembered
 * disabled switched off in [policy]
 */
export type SourceOutcome = 'found' | 'stale' | 'none' | 'error' | 'disabled'

export interface SourceAnswer {
  source: PolicySource
  outcome: SourceOutcome
  /** A sentence an operator can read: what was seen and why it counts (or not). */
  reason: string
  /** The level this source vouches for (found/stale only). */
  level?: Level
  /** The TLS mode this source requires (found/stale only). */
  tlsMode?: TlsMode
  /** MX patterns the mode checks (MTA-STS `*.x`, or the static list's `.x`). */
  mxPatterns?: string[]
  /** From the `_linksec` TXT record's sig= tag. */
  signatures?: 'required' | 'optional'
  /** End of the lifetime of this answer (ms since epoch); a failed refresh keeps it until then. */
  expiresAt?: number
  /** When to look again (ms since epoch). */
  refreshAt?: number
  /** MTA-STS policy id (RFC 8461 §3.1), to skip refetching an unchanged policy. */
  policyId?: string
  /** MTA-STS: the policy's `key: value` lines (RFC 8460 §4.4 policy-string, Postfix policy_string). */
  policyStrings?: string[]
  /**
   * MTA-STS: a TXT record announces a policy, but none could be used and none
   * is cached: why, as an RFC 8460 §4.3.2 result type (TLS reports count each
   * session to the domain as this failure).
   */
  stsFailure?: StsPolicyFailure
}

export type StsPolicyFailure = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid'

export interface DomainPolicy {
  /** The policy domain (lower case, no trailing dot). */
  domain: string
  level: Level
  tlsMode: TlsMode
  mxPatterns: string[]
  sources: SourceAnswer[]
  /** sig= from the domain's `_linksec` record; unknown when there is none or it failed. */
  signatures: 'required' | 'optional' | 'unknown'
  /** Which source decided the TLS mode (or the level when no TLS mode applies). */
  decidedBy: PolicySource | 'none'
  /**
   * A source that could have made this policy stricter (higher level or
   * stronger TLS mode) failed and nothing valid was remembered: callers
   * that need certainty answer 4xx.
   */
  temporaryFailure: boolean
  /** Like temporaryFailure, but only for the TLS mode (what the socketmap answers). */
  tlsModeUncertain: boolean
}
