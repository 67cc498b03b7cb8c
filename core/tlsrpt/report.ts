/**
 * The RFC 8460 §4 report: one JSON document per policy domain and day, with
 * a policies[] entry per policy the sessions ran under (policy, summary,
 * failure-details), gzipped for delivery (§5.3 application/tlsrpt+gzip).
 */
import { randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import type { PolicyDay } from './store'

export interface ReportInput {
  organization: string
  contact: string
  day: string
  domain: string
  days: PolicyDay[]
  reportId?: string
}

export interface TlsReport {
  'organization-name': string
  'date-range': { 'start-datetime': string; 'end-datetime': string }
  'contact-info': string
  'report-id': string
  policies: Array<{
    policy: { 'policy-type': string; 'policy-string': string[]; 'policy-domain': string; 'mx-host': string[] }
    summary: { 'total-successful-session-count': number; 'total-failure-session-count': number }
    'failure-details': Array<Record<string, string | number>>
  }>
}

export function dayRange(day: string): { start: Date; end: Date } {
  const start = new Date(`${day}T00:00:00Z`)
  return { start, end: new Date(start.getTime() + 24 * 3600 * 1000 - 1000) }
}

export function buildReport(r: ReportInput): TlsReport {
  const { start, end } = dayRange(r.day)
  const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z')
  return {
    'organization-name': r.organization,
    'date-range': { 'start-datetime': iso(start), 'end-datetime': iso(end) },
    'contact-info': r.contact,
    'report-id': r.reportId ?? `${r.day}.${r.domain}.${randomBytes(6).toString('hex')}@${r.organization}`,
    policies: r.days.map((d) => ({
      policy: {
        'policy-type': d.policy.policyType,
        'policy-string': d.policy.policyStrings,
        'policy-domain': d.policy.policyDomain,
        'mx-host': d.policy.mxHostPatterns,
      },
      summary: {
        'total-successful-session-count': d.successful,
        'total-failure-session-count': d.failures.reduce((n, f) => n + f.count, 0),
      },
      'failure-details': d.failures.map((f) => ({
        'result-type': f.resultType,
        ...(f.sendingMtaIp ? { 'sending-mta-ip': f.sendingMtaIp } : {}),
        'receiving-mx-hostname': f.receivingMxHostname,
        ...(f.receivingIp ? { 'receiving-ip': f.receivingIp } : {}),
        'failed-session-count': f.count,
        ...(f.failureReasonCode ? { 'failure-reason-code': f.failureReasonCode } : {}),
      })),
    })),
  }
}

export function gzipReport(report: TlsReport): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(report)))
}
