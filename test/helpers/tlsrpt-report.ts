/**
 * Checks a received TLS report against RFC 8460 §4 field by field (names,
 * types, the result-type registry of §4.3, RFC 3339 date-times, addresses,
 * failure counts that add up to the summary), so each test that receives one
 * (by mail or HTTPS) checks the same thing:
 *
 *   assertRfc8460Report(report, 'example.net')   // the one policy domain it is for
 */
import assert from 'node:assert/strict'
import * as net from 'node:net'
import type { TlsReport } from '../../core/tlsrpt/report'

/** RFC 8460 §4.3 result types (§6.6 registry). */
export const RFC8460_RESULT_TYPES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'tlsa-invalid',
  'dnssec-invalid',
  'dane-required',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
]

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/
const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0

export function assertRfc8460Report(r: TlsReport, domain: string): void {
  const top = r as unknown as Record<string, unknown>
  assert.deepEqual(
    Object.keys(top).sort(),
    ['contact-info', 'date-range', 'organization-name', 'policies', 'report-id'],
    'the §4.4 top-level fields, no others',
  )
  for (const k of ['organization-name', 'contact-info', 'report-id'] as const)
    assert.ok(typeof r[k] === 'string' && r[k].length > 0, k)
  const { 'start-datetime': start, 'end-datetime': end } = r['date-range']
  assert.match(start, DATE_TIME)
  assert.match(end, DATE_TIME)
  assert.ok(Date.parse(start) < Date.parse(end), 'date-range: start before end')
  assert.ok(Array.isArray(r.policies) && r.policies.length > 0, 'policies')
  for (const p of r.policies) {
    assert.ok(['sts', 'tlsa', 'no-policy-found'].includes(p.policy['policy-type']), p.policy['policy-type'])
    assert.equal(p.policy['policy-domain'], domain)
    assert.ok(Array.isArray(p.policy['policy-string']), 'policy-string')
    assert.ok(p.policy['policy-string'].every((s) => typeof s === 'string'))
    const policyFailure = p['failure-details'].some((f) => String(f['result-type']).startsWith('sts-'))
    if (p.policy['policy-type'] === 'sts' && !policyFailure) {
      assert.ok(p.policy['policy-string'].includes('version: STSv1'), 'an MTA-STS policy, line by line')
      assert.ok(p.policy['mx-host'].length > 0, 'mx-host of an sts policy')
    }
    const s = p.summary
    assert.ok(isCount(s['total-successful-session-count']), 'total-successful-session-count')
    assert.ok(isCount(s['total-failure-session-count']), 'total-failure-session-count')
    let failed = 0
    for (const f of p['failure-details']) {
      assert.ok(RFC8460_RESULT_TYPES.includes(String(f['result-type'])), `result-type ${f['result-type']}`)
      assert.ok(isCount(f['failed-session-count']) && (f['failed-session-count'] as number) > 0)
      failed += f['failed-session-count'] as number
      assert.equal(typeof f['receiving-mx-hostname'], 'string')
      for (const ip of ['receiving-ip', 'sending-mta-ip'] as const)
        if (ip in f) assert.ok(net.isIP(String(f[ip])) !== 0, `${ip} ${f[ip]}`)
      const known = [
        'result-type',
        'sending-mta-ip',
        'receiving-mx-hostname',
        'receiving-mx-helo',
        'receiving-ip',
        'failed-session-count',
        'additional-information',
        'failure-reason-code',
      ]
      assert.deepEqual(
        Object.keys(f).filter((k) => !known.includes(k)),
        [],
        'failure-details fields of §4.4',
      )
    }
    assert.equal(failed, s['total-failure-session-count'], 'failure-details add up to the summary')
  }
}
