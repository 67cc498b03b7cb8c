/**
 * DANE presence for SMTP (RFC 7672): the domain's MX answer must be
 * DNSSEC-validated (the AD bit from a resolver we trust, [resolver]
 * trust_ad), and at least one MX host must have a usable TLSA record at
 * `_25._tcp.<host>`, also validated. Then delivery is `dane-only`, which
 * beats MTA-STS (RFC 8461 §2). SERVFAIL from a validating resolver may mean
 * a bogus signature, so it is an error (mail waits), never "no DANE".
 * Not checked here: whether the MX hosts' address records are secure
 * (Postfix checks that itself at delivery under dane-only).
 */
import { errorText, keepOrFail, keepOrNone, type SourceContext } from './source-context'
import { normalizeDomain } from './domain'
import type { DnsAnswer, DnsRecord } from '../net/types'
import type { SourceAnswer } from './types'

/** MX hosts looked at; a domain with more is checked on its most preferred ones. */
const MAX_MX_HOSTS = 8
const MIN_REFRESH_SECONDS = 5

type TlsaRecord = Extract<DnsRecord, { type: 'TLSA' }>

/** RFC 7672 §3.1.3: SMTP uses DANE-TA(2) and DANE-EE(3); PKIX usages 0 and 1 are unusable. */
function isUsableTlsa(r: TlsaRecord): boolean {
  return (r.usage === 2 || r.usage === 3) && (r.selector === 0 || r.selector === 1) && r.matchingType <= 2
}

type HostResult = { host: string; usable: boolean; ttl: number } | { host: string; error: string }

export async function lookupDane(
  domain: string,
  prev: SourceAnswer | undefined,
  ctx: SourceContext,
): Promise<SourceAnswer> {
  let mx: DnsAnswer
  try {
    mx = await ctx.dns.query(domain, 'MX')
  } catch (e) {
    return keepOrFail('dane', prev, `DNS lookup of ${domain} MX failed (${errorText(e)})`, ctx)
  }
  if (mx.rcode === 'NXDOMAIN') return keepOrNone('dane', prev, `${domain} does not exist (NXDOMAIN)`, ctx)
  if (mx.rcode !== 'NOERROR')
    return keepOrFail('dane', prev, `DNS answered ${mx.rcode} for ${domain} MX${bogusHint(mx.rcode)}`, ctx)
  if (!mx.authenticated)
    return keepOrNone(
      'dane',
      prev,
      `${domain} MX answer is not DNSSEC-validated, so DANE does not apply`,
      ctx,
    )
  const hosts = mxHosts(domain, mx.records)
  if (hosts.length === 0) return keepOrNone('dane', prev, `${domain} has a null MX (accepts no mail)`, ctx)
  const results = await Promise.all(hosts.map((h) => lookupHostTlsa(h, ctx)))
  return daneAnswer(domain, prev, results, mx, ctx)
}

/** A validating resolver answers SERVFAIL when signatures do not verify. */
const bogusHint = (rcode: string) => (rcode === 'SERVFAIL' ? ' (DNSSEC may be bogus)' : '')

/** MX hosts by preference; no MX records means the domain itself (RFC 5321 §5.1). */
function mxHosts(domain: string, records: DnsRecord[]): string[] {
  const mxs = records.flatMap((r) => (r.type === 'MX' ? [r] : []))
  if (mxs.length === 0) return [domain]
  if (mxs.length === 1 && (mxs[0]!.exchange === '' || mxs[0]!.exchange === '.')) return [] // RFC 7505
  const sorted = [...mxs].sort((a, b) => a.priority - b.priority)
  const names = sorted.flatMap((r) => normalizeDomain(r.exchange) ?? [])
  return [...new Set(names)].slice(0, MAX_MX_HOSTS)
}

async function lookupHostTlsa(host: string, ctx: SourceContext): Promise<HostResult> {
  const name = `_25._tcp.${host}`
  try {
    const a = await ctx.dns.query(name, 'TLSA')
    if (a.rcode === 'NXDOMAIN') return { host, usable: false, ttl: 0 }
    if (a.rcode !== 'NOERROR') return { host, error: `${name} TLSA: ${a.rcode}` }
    const tlsa = a.records.flatMap((r) => (r.type === 'TLSA' ? [r] : []))
    const usable = a.authenticated && tlsa.some(isUsableTlsa)
    return { host, usable, ttl: Math.min(...tlsa.map((r) => r.ttl), 86400) }
  } catch (e) {
    return { host, error: `${name} TLSA: ${errorText(e)}` }
  }
}

function daneAnswer(
  domain: string,
  prev: SourceAnswer | undefined,
  results: HostResult[],
  mx: DnsAnswer,
  ctx: SourceContext,
): SourceAnswer {
  const withTlsa = results.flatMap((r) => ('usable' in r && r.usable ? [r] : []))
  const errors = results.flatMap((r) => ('error' in r ? [r.error] : []))
  if (withTlsa.length === 0) {
    if (errors.length) return keepOrFail('dane', prev, `TLSA lookups failed: ${errors.join('; ')}`, ctx)
    return keepOrNone('dane', prev, `no validated, usable TLSA record for the MX hosts of ${domain}`, ctx)
  }
  const now = ctx.now()
  const ttl = Math.max(
    MIN_REFRESH_SECONDS,
    Math.min(...withTlsa.map((r) => r.ttl), ...mx.records.map((r) => r.ttl)),
  )
  ctx.metrics.peerDeclarations.inc({ source: 'dane', level: '3' })
  const hosts = withTlsa.map((r) => r.host)
  return {
    source: 'dane',
    outcome: 'found',
    // Like an enforced MTA-STS policy, published DANE is a commitment to authenticated TLS: level 3 for routing.
    level: 3,
    tlsMode: 'dane-only',
    mxPatterns: hosts,
    reason: `validated TLSA for ${hosts.join(', ')} (of ${results.length} MX hosts)`,
    expiresAt: now + ttl * 1000,
    refreshAt: now + ttl * 1000,
  }
}
