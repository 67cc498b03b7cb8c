/**
 * How the sources' answers become one DomainPolicy. The rule, in full:
 *
 * 1. Only answers that are `found` or `stale` (a last good answer kept within
 *    its lifetime after a failed refresh) count. `none`, `error`, `disabled`
 *    say nothing.
 * 2. Level = the highest level any counting answer vouches for. MTA-STS
 *    `mode: enforce` and validated DANE vouch for 3 (docs/architecture.md §6.2: "counts as
 *    level >= 3 for routing"); a static entry in enforce mode vouches for
 *    max(its level, 3). A lower claim never cancels a higher one: each claim
 *    is a promise for its own lifetime.
 * 3. TLS mode = the strongest mode any counting answer requires, ranked
 *    none < may < encrypt < verify < secure < dane-only. So DANE (dane-only)
 *    beats MTA-STS and the static list (secure, RFC 8461 §2), and a domain
 *    declaring level >= 1 anywhere gets at least `encrypt`. On a tie the
 *    source earlier in static, dane, mta_sts, txt, learned decides: the
 *    operator's static list is fact and its MX patterns are used.
 * 4. MX patterns come from the answer that decided the TLS mode.
 * 5. signatures = sig= of a counting `_linksec` TXT answer, else unknown.
 * 6. temporaryFailure: some source failed with nothing remembered, and had it
 *    answered it could have raised the level or the TLS mode above what is
 *    decided. tlsModeUncertain: the same, for the TLS mode only (a failed
 *    `_linksec` lookup cannot make a domain under MTA-STS any stricter).
 */
import type { Level } from '../levels'
import {
  POLICY_SOURCES,
  TLS_MODE_RANK,
  type DomainPolicy,
  type PolicySource,
  type SourceAnswer,
  type TlsMode,
} from './types'

/** The most each source could say if it answered: the bound for rule 6. */
const POTENTIAL: Readonly<Record<PolicySource, { level: Level; tls: TlsMode }>> = {
  static: { level: 4, tls: 'secure' },
  dane: { level: 3, tls: 'dane-only' },
  mta_sts: { level: 3, tls: 'secure' },
  txt: { level: 4, tls: 'encrypt' },
  learned: { level: 4, tls: 'encrypt' },
}

const counts = (a: SourceAnswer) => a.outcome === 'found' || a.outcome === 'stale'
const order = (s: PolicySource) => POLICY_SOURCES.indexOf(s)

export function combine(domain: string, answers: readonly SourceAnswer[]): DomainPolicy {
  const valid = answers.filter(counts).sort((a, b) => order(a.source) - order(b.source))
  const level = valid.reduce<Level>((max, a) => ((a.level ?? 0) > max ? (a.level as Level) : max), 0)
  const decider = strongestTls(valid)
  const tlsMode = decider?.tlsMode ?? 'none'
  const txt = valid.find((a) => a.source === 'txt' && a.signatures)
  const failed = answers.filter((a) => a.outcome === 'error').map((a) => POTENTIAL[a.source])
  const tlsModeUncertain = failed.some((p) => TLS_MODE_RANK[p.tls] > TLS_MODE_RANK[tlsMode])
  return {
    domain,
    level,
    tlsMode,
    mxPatterns: decider?.mxPatterns ? [...decider.mxPatterns] : [],
    sources: [...answers],
    signatures: txt?.signatures ?? 'unknown',
    decidedBy: decider?.source ?? valid.find((a) => a.level === level && level > 0)?.source ?? 'none',
    temporaryFailure: tlsModeUncertain || failed.some((p) => p.level > level),
    tlsModeUncertain,
  }
}

/** The first answer (in source order) with the highest-ranked TLS mode. */
function strongestTls(valid: readonly SourceAnswer[]): SourceAnswer | undefined {
  let best: SourceAnswer | undefined
  for (const a of valid) {
    if (!a.tlsMode || a.tlsMode === 'none') continue
    if (!best || TLS_MODE_RANK[a.tlsMode] > TLS_MODE_RANK[best.tlsMode!]) best = a
  }
  return best
}
