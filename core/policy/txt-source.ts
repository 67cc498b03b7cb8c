/**
 * The `_linksec.<domain>` TXT declaration (docs/architecture.md §6.2). A declaration is a
 * promise for its ttl: a weaker or missing record does not undo a stronger
 * one that is still within its lifetime, and a malformed one is ignored with
 * a counted reason.
 */
import { pickTxtRecord, txtRecordName, type TxtDeclaration } from '../levels'
import type { DnsRecord } from '../net/types'
import { errorText, keepOrFail, keepOrNone, stillValid, type SourceContext } from './source-context'
import type { SourceAnswer } from './types'

/** Floor for re-asking DNS, so a zero DNS ttl does not turn every query into a lookup. */
const MIN_REFRESH_SECONDS = 5

export async function lookupTxt(
  domain: string,
  prev: SourceAnswer | undefined,
  ctx: SourceContext,
): Promise<SourceAnswer> {
  const name = txtRecordName(domain)
  let records: DnsRecord[]
  try {
    const answer = await ctx.dns.query(name, 'TXT')
    if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN')
      return keepOrFail('txt', prev, `DNS answered ${answer.rcode} for ${name} TXT`, ctx)
    records = answer.records
  } catch (e) {
    return keepOrFail('txt', prev, `DNS lookup of ${name} TXT failed (${errorText(e)})`, ctx)
  }
  const texts = records.flatMap((r) => (r.type === 'TXT' ? [r.text] : []))
  const parsed = pickTxtRecord(texts)
  if (!parsed) return keepOrNone('txt', prev, `no v=LINKSEC1 record at ${name}`, ctx)
  if (!parsed.ok) {
    ctx.metrics.declarationsRejected.inc({ source: 'txt', reason: parsed.reason })
    return keepOrNone('txt', prev, `record at ${name} ignored: ${parsed.reason}`, ctx)
  }
  const dnsTtl = Math.min(...records.map((r) => r.ttl))
  const fresh = foundAnswer(name, parsed.value, dnsTtl, ctx.now())
  ctx.metrics.peerDeclarations.inc({ source: 'txt', level: String(fresh.level) })
  return strongerOf(fresh, prev, ctx.now())
}

function foundAnswer(name: string, d: TxtDeclaration, dnsTtl: number, now: number): SourceAnswer {
  const refresh = Math.max(MIN_REFRESH_SECONDS, Math.min(dnsTtl, d.ttlSeconds))
  return {
    source: 'txt',
    outcome: 'found',
    reason: `${name} declares level ${d.level}, ttl=${d.ttlSeconds}, sig=${d.signatures}`,
    level: d.level,
    tlsMode: d.level >= 1 ? 'encrypt' : undefined,
    signatures: d.signatures,
    expiresAt: now + d.ttlSeconds * 1000,
    refreshAt: now + refresh * 1000,
  }
}

/** A fresh record declaring less does not undo a stronger promise still within its ttl. */
function strongerOf(fresh: SourceAnswer, prev: SourceAnswer | undefined, now: number): SourceAnswer {
  if (!stillValid(prev, now) || (prev.level ?? 0) <= (fresh.level ?? 0)) return fresh
  return {
    ...prev,
    outcome: 'stale',
    reason: `record now declares level ${fresh.level}; level ${prev.level} declared earlier holds until ${new Date(prev.expiresAt!).toISOString()}`,
    refreshAt: fresh.refreshAt,
  }
}
