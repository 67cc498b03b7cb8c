/**
 * What every network source gets, and the one rule they share (docs/architecture.md §6.2,
 * §6.5 "never lose mail"): a failed refresh never weakens an answer that is
 * still within its lifetime. Sources return an answer, never throw.
 */
import type { LinksecConfig } from '../config'
import { describeError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import type { DnsClient, HttpsClient } from '../net/types'
import type { PolicySource, SourceAnswer } from './types'

export interface SourceContext {
  dns: DnsClient
  https: HttpsClient
  readonly now: () => number
  config: LinksecConfig
  metrics: Metrics
  log: Logger
}

/** The previous answer, if it may still stand in for a failed or missing refresh. */
export function stillValid(prev: SourceAnswer | undefined, now: number): prev is SourceAnswer {
  return (
    prev !== undefined &&
    (prev.outcome === 'found' || prev.outcome === 'stale') &&
    prev.expiresAt !== undefined &&
    prev.expiresAt > now
  )
}

/** What a kept answer says, built from its fields (never from its reason, so reasons do not nest). */
export function describeKept(a: SourceAnswer): string {
  const parts: string[] = []
  if (a.level !== undefined) parts.push(`level ${a.level}`)
  if (a.tlsMode) parts.push(`TLS ${a.tlsMode}`)
  if (a.mxPatterns?.length) parts.push(`mx ${a.mxPatterns.join(',')}`)
  const until = a.expiresAt !== undefined ? new Date(a.expiresAt).toISOString() : '?'
  return `${parts.join(', ') || 'the earlier answer'} kept until ${until}`
}

function kept(prev: SourceAnswer, why: string, ctx: SourceContext): SourceAnswer {
  const retryMs = errorTtlMs(ctx.config) || 1000
  return {
    ...prev,
    outcome: 'stale',
    reason: `${why}; ${describeKept(prev)}`,
    refreshAt: ctx.now() + retryMs,
  }
}

/** Keep the last good answer within its lifetime, else report OUTCOME with the reason. */
function keepOr(
  outcome: 'error' | 'none',
  source: PolicySource,
  prev: SourceAnswer | undefined,
  why: string,
  ctx: SourceContext,
): SourceAnswer {
  if (stillValid(prev, ctx.now())) return kept(prev, why, ctx)
  return { source, outcome, reason: why }
}

/** A lookup failed: keep the last good answer within its lifetime, else report the error. */
export const keepOrFail = (
  source: PolicySource,
  prev: SourceAnswer | undefined,
  why: string,
  ctx: SourceContext,
) => keepOr('error', source, prev, why, ctx)

/** Nothing usable now (no record, or one we ignore): keep the last good answer within its lifetime. */
export const keepOrNone = (
  source: PolicySource,
  prev: SourceAnswer | undefined,
  why: string,
  ctx: SourceContext,
) => keepOr('none', source, prev, why, ctx)

/** How long a failed lookup is remembered before trying again: short, so mail is not deferred for long. */
export function errorTtlMs(config: LinksecConfig): number {
  return Math.min(config.policy.negative_ttl, 30) * 1000
}

export function errorText(e: unknown): string {
  return describeError(e)
}
