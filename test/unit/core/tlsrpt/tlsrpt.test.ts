import assert from 'node:assert/strict'
import { gunzipSync } from 'node:zlib'
import { describe, it } from 'node:test'
import { parseConfig } from '../../../../core/config'
import { combine } from '../../../../core/policy/combine'
import { reportMessage, reportFileName } from '../../../../core/tlsrpt/deliver'
import { certificateResult, sessionResult } from '../../../../core/tlsrpt/outcome'
import { reportPolicyOf } from '../../../../core/tlsrpt/policy'
import { buildReport, gzipReport } from '../../../../core/tlsrpt/report'
import { parseTlsrptRecord } from '../../../../core/tlsrpt/rua'
import { tlsrptAttributes } from '../../../../milter/socketmap/tls-policy'
import { createMemoryStore, reportDay } from '../../../../core/tlsrpt/store'
import { policyReply } from '../../../../milter/socketmap/tls-policy'
import { assertRfc8460Report } from '../../../helpers/tlsrpt-report'

const sts = combine('sts.test', [
  {
    source: 'mta_sts',
    outcome: 'found',
    reason: 'r',
    level: 3,
    tlsMode: 'secure',
    mxPatterns: ['mx.sts.test'],
    policyStrings: ['version: STSv1', 'mode: enforce', 'mx: mx.sts.test', 'max_age: 86400'],
  },
])
const none = combine('plain.test', [{ source: 'txt', outcome: 'none', reason: 'no record' }])
const base = { sawEhlo: true, tls: false, offersStartTls: false, certVerified: false }

describe('RFC 8460 result types from what the session showed', () => {
  it('no STARTTLS, TLS failures and certificate errors', () => {
    assert.equal(sessionResult(base, 'no-policy-found'), 'starttls-not-supported')
    assert.equal(sessionResult({ ...base, sawEhlo: false }, 'sts'), undefined)
    assert.equal(
      sessionResult({ ...base, offersStartTls: true, tlsError: 'handshake' }, 'sts'),
      'validation-failure',
    )
    const tlsUp = { ...base, offersStartTls: true, tls: true }
    assert.equal(sessionResult(tlsUp, 'no-policy-found'), 'success', 'no policy: encryption is the success')
    assert.equal(
      sessionResult({ ...tlsUp, certError: 'self-signed certificate' }, 'sts'),
      'certificate-not-trusted',
    )
    assert.equal(sessionResult({ ...tlsUp, certVerified: true }, 'sts'), 'success')
    assert.equal(certificateResult('certificate has expired'), 'certificate-expired')
    assert.equal(
      certificateResult("Hostname/IP does not match certificate's altnames"),
      'certificate-host-mismatch',
    )
    assert.equal(certificateResult('unable to get local issuer certificate'), 'certificate-not-trusted')
    assert.equal(certificateResult('something else'), 'validation-failure')
  })
  it('the policy: sts from MTA-STS, no-policy-found otherwise', () => {
    assert.deepEqual(reportPolicyOf(sts), {
      policyType: 'sts',
      policyDomain: 'sts.test',
      policyStrings: ['version: STSv1', 'mode: enforce', 'mx: mx.sts.test', 'max_age: 86400'],
      mxHostPatterns: ['mx.sts.test'],
      ttlSeconds: 86400,
    })
    assert.equal(reportPolicyOf(none).policyType, 'no-policy-found')
  })
  it('an MTA-STS policy announced but not usable: sts with the failure; Postfix gets no attributes for it', () => {
    const gone = combine('gone.test', [
      { source: 'mta_sts', outcome: 'none', reason: 'fetch failed', stsFailure: 'sts-policy-fetch-error' },
      { source: 'txt', outcome: 'none', reason: 'no record' },
    ])
    assert.deepEqual(reportPolicyOf(gone), {
      policyType: 'sts',
      policyDomain: 'gone.test',
      policyStrings: [],
      mxHostPatterns: [],
      failure: 'sts-policy-fetch-error',
    })
    assert.equal(tlsrptAttributes(gone), '')
    assert.notEqual(tlsrptAttributes(sts), '')
    // A cached policy kept over a failed refresh (stale) is still the policy: no failure.
    const kept = combine('sts.test', [{ ...sts.sources[0]!, outcome: 'stale' }])
    assert.equal(reportPolicyOf(kept).failure, undefined)
  })
})

/** An MTA-STS policy in mode testing, as core/policy/mta-sts-source.ts answers it: found, no level, no TLS mode. */
const testingStrings = ['version: STSv1', 'mode: testing', 'mx: *.testing.test', 'max_age: 604800']
const testing = combine('testing.test', [
  {
    source: 'mta_sts',
    outcome: 'found',
    reason: 'not enforced (mode testing)',
    mxPatterns: ['*.testing.test'],
    policyStrings: testingStrings,
  },
  { source: 'txt', outcome: 'none', reason: 'no record' },
])

describe('an MTA-STS policy in mode testing (RFC 8461 §5, RFC 8460 §4.3/§4.4)', () => {
  it('is reported as policy-type sts with its policy strings and mx patterns', () => {
    assert.deepEqual(reportPolicyOf(testing), {
      policyType: 'sts',
      policyDomain: 'testing.test',
      policyStrings: testingStrings,
      mxHostPatterns: ['*.testing.test'],
      ttlSeconds: 604800,
    })
    // Under DANE the session ran under the TLSA policy (RFC 8461 §2): tlsa, not the testing policy.
    const dane = combine('testing.test', [
      { source: 'dane', outcome: 'found', reason: 'TLSA', level: 2, tlsMode: 'dane-only' },
      testing.sources[0]!,
    ])
    assert.equal(reportPolicyOf(dane).policyType, 'tlsa')
    // mode none is no policy (RFC 8461 §5).
    const off = combine('off.test', [
      { ...testing.sources[0]!, policyStrings: ['version: STSv1', 'mode: none', 'max_age: 86400'] },
    ])
    assert.equal(reportPolicyOf(off).policyType, 'no-policy-found')
  })

  it('is never enforced: no TLS mode, the socketmap reply is unchanged, with or without tlsrpt attributes', () => {
    assert.equal(testing.tlsMode, 'none')
    assert.deepEqual(policyReply(testing), { status: 'NOTFOUND' })
    assert.deepEqual(policyReply(testing, { tlsrpt: true }), { status: 'NOTFOUND' })
    // With a linksec level making it encrypt, Postfix still gets no sts attributes to act on.
    const encrypt = combine('testing.test', [
      testing.sources[0]!,
      { source: 'txt', outcome: 'found', reason: 'level 2', level: 2, tlsMode: 'encrypt' },
    ])
    assert.equal(reportPolicyOf(encrypt).policyType, 'sts')
    assert.equal(tlsrptAttributes(encrypt), '')
    assert.deepEqual(policyReply(encrypt, { tlsrpt: true }), { status: 'OK', data: 'encrypt' })
  })

  it('failures under it are sts failures in the report; a delivery over a verified certificate is the success', async () => {
    const store = createMemoryStore()
    const at = Date.parse('2026-12-03T08:00:00Z')
    const policy = reportPolicyOf(testing)
    const seen = [
      { ...base }, // EHLO without STARTTLS
      { ...base, offersStartTls: true, tls: true, certError: 'self-signed certificate' },
      { ...base, offersStartTls: true, tls: true, certError: 'certificate has expired' },
      { ...base, offersStartTls: true, tls: true, certVerified: true },
    ]
    const results = seen.map((f) => sessionResult(f, policy.policyType))
    assert.deepEqual(results, [
      'starttls-not-supported',
      'certificate-not-trusted',
      'certificate-expired',
      'success',
    ])
    for (const result of results)
      await store.record({ policy, result, receivingMxHostname: 'mx1.testing.test', at })
    const report = buildReport({
      organization: 'example.org',
      contact: 'mailto:tls@example.org',
      day: reportDay(at),
      domain: 'testing.test',
      days: await store.counts(reportDay(at), 'testing.test'),
    })
    assertRfc8460Report(report, 'testing.test')
    assert.equal(report.policies.length, 1)
    const [p] = report.policies
    assert.deepEqual(p!.policy, {
      'policy-type': 'sts',
      'policy-string': testingStrings,
      'policy-domain': 'testing.test',
      'mx-host': ['*.testing.test'],
    })
    assert.deepEqual(p!.summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 3 })
    assert.deepEqual(p!['failure-details'].map((f) => f['result-type']).sort(), [
      'certificate-expired',
      'certificate-not-trusted',
      'starttls-not-supported',
    ])
  })
})

describe('counting and the report JSON (RFC 8460 §4)', () => {
  it('groups sessions per day, domain and policy; failures by their details', async () => {
    const store = createMemoryStore()
    const at = Date.parse('2026-12-02T10:00:00Z')
    const policy = reportPolicyOf(sts)
    for (let i = 0; i < 3; i++)
      await store.record({ policy, result: 'success', receivingMxHostname: 'mx.sts.test', at })
    for (let i = 0; i < 2; i++)
      await store.record({
        policy,
        result: 'certificate-not-trusted',
        receivingMxHostname: 'mx.sts.test',
        receivingIp: '192.0.2.1',
        at,
      })
    assert.deepEqual(await store.domains('2026-12-02'), ['sts.test'])
    const report = buildReport({
      organization: 'example.org',
      contact: 'mailto:tls@example.org',
      day: reportDay(at),
      domain: 'sts.test',
      days: await store.counts('2026-12-02', 'sts.test'),
      reportId: 'r1',
    })
    assert.deepEqual(report, {
      'organization-name': 'example.org',
      'date-range': { 'start-datetime': '2026-12-02T00:00:00Z', 'end-datetime': '2026-12-02T23:59:59Z' },
      'contact-info': 'mailto:tls@example.org',
      'report-id': 'r1',
      policies: [
        {
          policy: {
            'policy-type': 'sts',
            'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx.sts.test', 'max_age: 86400'],
            'policy-domain': 'sts.test',
            'mx-host': ['mx.sts.test'],
          },
          summary: { 'total-successful-session-count': 3, 'total-failure-session-count': 2 },
          'failure-details': [
            {
              'result-type': 'certificate-not-trusted',
              'receiving-mx-hostname': 'mx.sts.test',
              'receiving-ip': '192.0.2.1',
              'failed-session-count': 2,
            },
          ],
        },
      ],
    })
    assert.deepEqual(JSON.parse(gunzipSync(gzipReport(report)).toString()), report)
    assert.equal(await store.claim('2026-12-02', 'sts.test'), true)
    assert.equal(await store.claim('2026-12-02', 'sts.test'), false, 'sent once')
  })

  it('the mailed form: multipart/report; report-type="tlsrpt" with application/tlsrpt+gzip (§5.3)', () => {
    const report = buildReport({
      organization: 'o.test',
      contact: 'c',
      day: '2026-12-02',
      domain: 'sts.test',
      days: [],
      reportId: 'id1',
    })
    const gz = gzipReport(report)
    const msg = reportMessage(
      { relayHost: '127.0.0.1', relayPort: 25, from: 'r@o.test', submitter: 'mx.o.test' },
      'tls@sts.test',
      'sts.test',
      report,
      gz,
    )
    assert.match(msg, /^Content-Type: multipart\/report; report-type="tlsrpt"; boundary="/m)
    assert.match(msg, /^TLS-Report-Domain: sts\.test\r$/m)
    assert.match(msg, /^TLS-Report-Submitter: mx\.o\.test\r$/m)
    assert.match(msg, /^Content-Type: application\/tlsrpt\+gzip\r$/m)
    assert.equal(
      reportFileName('mx.o.test', 'sts.test', report),
      'mx.o.test!sts.test!1796169600!1796255999!id1.json.gz',
    )
  })

  it('_smtp._tls records: mailto and https rua, anything else ignored', () => {
    assert.deepEqual(parseTlsrptRecord('v=TLSRPTv1; rua=mailto:tls@example.net,https://r.example.net/v1'), [
      { kind: 'mailto', address: 'tls@example.net', uri: 'mailto:tls@example.net' },
      { kind: 'https', uri: 'https://r.example.net/v1' },
    ])
    assert.deepEqual(parseTlsrptRecord('v=TLSRPTv1; rua=http://x.test'), [])
    assert.equal(parseTlsrptRecord('v=STSv1; id=1'), undefined)
  })
})

describe('[tlsrpt] defaults', () => {
  it('counting and the daily send on, reports mailed through the local MTA on port 25, no Postfix log read', () => {
    assert.deepEqual(parseConfig({}, '/tmp').tlsrpt, {
      enabled: true,
      send: true,
      organization: '',
      contact: '',
      from: '',
      relay: '127.0.0.1:25',
      postfix_log: '',
    })
  })
})
