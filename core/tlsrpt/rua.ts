/**
 * Where a domain wants its TLS reports: TXT `_smtp._tls.<domain>` =
 * `v=TLSRPTv1; rua=<uri>[,<uri>]` (RFC 8460 §3), looked up through linksec's
 * own DNS client (core/net/dns.ts). Only mailto: and https: URIs are used.
 */
import type { DnsClient } from '../net/types'

export type ReportUri = { kind: 'mailto'; address: string; uri: string } | { kind: 'https'; uri: string }

export function parseTlsrptRecord(text: string): ReportUri[] | undefined {
  const fields = text
    .split(';')
    .map((f) => f.trim())
    .filter(Boolean)
  if (fields[0] !== 'v=TLSRPTv1') return undefined
  const rua = fields.find((f) => /^rua\s*=/i.test(f))
  if (!rua) return undefined
  const out: ReportUri[] = []
  for (const raw of rua.slice(rua.indexOf('=') + 1).split(',')) {
    const uri = raw.trim()
    const mail = /^mailto:([^\s?@]+@[A-Za-z0-9.-]+)$/i.exec(uri)
    if (mail) out.push({ kind: 'mailto', address: decodeURIComponent(mail[1]!), uri })
    else if (/^https:\/\/[^\s]+$/i.test(uri)) out.push({ kind: 'https', uri })
  }
  return out
}

/** The report URIs of a domain; [] when it publishes none (or more than one record, RFC 8460 §3). */
export async function lookupReportUris(dns: DnsClient, domain: string): Promise<ReportUri[]> {
  const a = await dns.query(`_smtp._tls.${domain}`, 'TXT')
  const ours = a.records.flatMap((r) => (r.type === 'TXT' && /^v=TLSRPTv1/.test(r.text) ? [r.text] : []))
  if (ours.length !== 1) return []
  return parseTlsrptRecord(ours[0]!) ?? []
}
