/**
 * MTA-STS discovery and fetch (RFC 8461 §3): TXT `_mta-sts.<domain>`, then
 * `https://mta-sts.<domain>/.well-known/mta-sts.txt` (200 only, no redirects,
 * text/plain, capped). A cached policy within max_age survives a failed
 * refresh and a vanished TXT record (§3.3, §5.1). A TXT record with no
 * fetchable policy and nothing cached means no policy, as §3.3 says; the
 * reason is counted. DNS failures with nothing cached are errors.
 */
import {
  describeKept,
  errorText,
  keepOrFail,
  keepOrNone,
  stillValid,
  type SourceContext,
} from './source-context'
import { parseStsPolicy, parseStsTxt, type StsPolicy } from './mta-sts-parse'
import type { SourceAnswer, StsPolicyFailure } from './types'
import type { DnsRecord, FetchResponse } from '../net/types'
import { isLinksecError } from '../errors'

/** RFC 8461 §3.3 suggests 64 KB; [net] max_bytes may lower it. */
const STS_MAX_BYTES = 64 * 1024
const MIN_REFRESH_SECONDS = 5
/** Re-check the TXT id at least daily, as §5.1 suggests refreshing proactively. */
const MAX_REFRESH_SECONDS = 24 * 3600

function stsPolicyUrl(domain: string): string {
  return `https://mta-sts.${domain}/.well-known/mta-sts.txt`
}

export async function lookupMtaSts(
  domain: string,
  prev: SourceAnswer | undefined,
  ctx: SourceContext,
): Promise<SourceAnswer> {
  const txt = await discover(domain, prev, ctx)
  if ('answer' in txt) return txt.answer
  const now = ctx.now()
  const refreshAt = now + clampRefresh(txt.dnsTtl) * 1000
  if (stillValid(prev, now) && prev.policyId === txt.id)
    return {
      ...prev,
      outcome: 'found',
      refreshAt,
      reason: `policy id ${txt.id} unchanged: ${describeKept(prev)}`,
    }
  const fetched = await fetchPolicy(domain, ctx)
  if (typeof fetched === 'string') {
    const code = fetched.split(':')[0]!
    ctx.metrics.declarationsRejected.inc({ source: 'mta_sts', reason: code })
    const answer = keepOrNone(
      'mta_sts',
      prev,
      `policy fetch from ${stsPolicyUrl(domain)} failed: ${fetched}`,
      ctx,
    )
    return answer.outcome === 'none' ? { ...answer, stsFailure: stsFailureOf(code) } : answer
  }
  return policyAnswer(fetched, txt.id, now, refreshAt, ctx)
}

type Discovery = { id: string; dnsTtl: number } | { answer: SourceAnswer }

async function discover(
  domain: string,
  prev: SourceAnswer | undefined,
  ctx: SourceContext,
): Promise<Discovery> {
  const name = `_mta-sts.${domain}`
  let records: DnsRecord[]
  try {
    const a = await ctx.dns.query(name, 'TXT')
    if (a.rcode !== 'NOERROR' && a.rcode !== 'NXDOMAIN')
      return { answer: keepOrFail('mta_sts', prev, `DNS answered ${a.rcode} for ${name} TXT`, ctx) }
    records = a.records
  } catch (e) {
    return { answer: keepOrFail('mta_sts', prev, `DNS lookup of ${name} TXT failed (${errorText(e)})`, ctx) }
  }
  const texts = records.flatMap((r) => (r.type === 'TXT' ? [r.text] : []))
  const parsed = parseStsTxt(texts)
  if (!parsed) return { answer: keepOrNone('mta_sts', prev, `no v=STSv1 record at ${name}`, ctx) }
  if (!parsed.ok) {
    ctx.metrics.declarationsRejected.inc({ source: 'mta_sts', reason: `txt_${parsed.reason}` })
    return { answer: keepOrNone('mta_sts', prev, `record at ${name} ignored: ${parsed.reason}`, ctx) }
  }
  return { id: parsed.value.id, dnsTtl: Math.min(...records.map((r) => r.ttl)) }
}

/** The policy, or a reason (`code: detail`) why there is none. */
async function fetchPolicy(domain: string, ctx: SourceContext): Promise<StsPolicy | string> {
  let res: FetchResponse
  try {
    res = await ctx.https.get(stsPolicyUrl(domain), {
      maxBytes: Math.min(ctx.config.net.max_bytes, STS_MAX_BYTES),
      maxRedirects: 0,
    })
  } catch (e) {
    const code = isLinksecError(e) ? e.code.replace(/^LINKSEC_/, '').toLowerCase() : 'fetch_error'
    return `${code}: ${errorText(e)}`
  }
  if (res.status !== 200) return `http_status: HTTP ${res.status} (only 200 counts)`
  const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'text/plain') return `bad_content_type: Content-Type "${type}" is not text/plain`
  const parsed = parseStsPolicy(res.body.toString('utf8'))
  if (!parsed.ok) return `policy_${parsed.reason}: the policy file does not parse (${parsed.reason})`
  return parsed.value
}

function policyAnswer(
  p: StsPolicy,
  id: string,
  now: number,
  refreshAt: number,
  ctx: SourceContext,
): SourceAnswer {
  const base = {
    source: 'mta_sts' as const,
    outcome: 'found' as const,
    policyId: id,
    expiresAt: now + p.maxAgeSeconds * 1000,
    refreshAt,
    // The policy as applied, one line per string (RFC 8460 §4.4): what TLS reports and Postfix 3.10 name.
    policyStrings: [
      'version: STSv1',
      `mode: ${p.mode}`,
      ...p.mx.map((m) => `mx: ${m}`),
      `max_age: ${p.maxAgeSeconds}`,
    ],
  }
  const head = `policy id ${id}, mode ${p.mode}, max_age ${p.maxAgeSeconds}`
  if (p.mode !== 'enforce')
    return { ...base, mxPatterns: p.mx, reason: `${head}: not enforced (mode ${p.mode})` }
  // docs/architecture.md §6.2: an enforced MTA-STS policy counts as level 3 for routing.
  ctx.metrics.peerDeclarations.inc({ source: 'mta_sts', level: '3' })
  return { ...base, level: 3, tlsMode: 'secure', mxPatterns: p.mx, reason: `${head}, mx ${p.mx.join(',')}` }
}

/** A failed fetch's code (fetchPolicy) as an RFC 8460 §4.3.2 result type. */
function stsFailureOf(code: string): StsPolicyFailure {
  if (code === 'fetch_tls') return 'sts-webpki-invalid'
  if (code.startsWith('policy_') || code === 'bad_content_type') return 'sts-policy-invalid'
  return 'sts-policy-fetch-error'
}

function clampRefresh(dnsTtl: number): number {
  return Math.min(MAX_REFRESH_SECONDS, Math.max(MIN_REFRESH_SECONDS, dnsTtl))
}
