/**
 * The live exposition of the HTTP listener passes `promtool check metrics`
 * (docs/architecture.md §7), with every linksec metric carrying samples.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { defaultConfig } from '../../core/config'
import { logDecision } from '../../core/decision-log'
import { startHttpService } from '../../core/http/server'
import { silentLogger } from '../../core/log'
import { createMetrics, type Metrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { certificateExpiryGauge } from '../../core/tls/metrics'
import { tlsrptMetrics } from '../../core/tlsrpt'
import { needTools } from '../helpers/tools'

function promtoolCheck(exposition: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], {
    input: exposition,
    encoding: 'utf8',
    timeout: 30_000,
  })
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() }
}

/** One sample in every linksec metric, with label values the adapters use. */
function touchEveryMetric(m: Metrics): void {
  m.taggedMessages.inc({ level: '3', outcome: 'rejected_plaintext' })
  m.signatureResults.inc({ result: 'pass' })
  m.keyLookups.inc({ method: 'wkd_advanced', outcome: 'found' })
  m.keyLookupDuration.observe({ method: 'wkd_advanced' }, 0.042)
  m.peerDeclarations.inc({ source: 'ehlo', level: '3' })
  m.declarationsRejected.inc({ source: 'txt', reason: 'syntax' })
  m.policyLookups.inc({ source: 'txt', outcome: 'found' })
  m.milterSessions.inc()
  m.milterProtocolErrors.inc({ reason: 'bad_frame' })
  m.socketmapRequests.inc({ result: 'ok' })
  m.inboundTls.inc({ adapter: 'milter', tls: 'yes' })
  m.internalErrors.inc({ adapter: 'milter', stage: 'eom' })
  m.wkdRequests.inc({ layout: 'advanced', status: '200' })
  m.milterLimits.inc({ limit: 'header_bytes' })
  m.signedMessages.inc({ outcome: 'signed' })
  m.wksSubmissions.inc({ outcome: 'confirmation_sent' })
  m.recipientRequests.inc({ status: '200', advice: 'encrypt' })
  m.keyChanges.inc({ certified: 'false' })
  tlsrptMetrics(m).sessions.inc({ result: 'starttls-not-supported' })
  tlsrptMetrics(m).reports.inc({ method: 'mailto', outcome: 'sent' })
  certificateExpiryGauge(m).set({ file: '/etc/linksec/tls_cert.pem' }, 1_800_000_000)
}

test('promtool check metrics passes on the live /metrics', async (t) => {
  if (!needTools(t, { promtool: 'prometheus' })) return
  const metrics = createMetrics()
  const rt = createRuntime(
    {
      ...defaultConfig('/nonexistent'),
      http: { ...defaultConfig('/nonexistent').http, listen: '127.0.0.1:0', wkd: false },
    },
    { log: silentLogger, metrics },
  )
  touchEveryMetric(metrics)
  logDecision(rt, { adapter: 'milter', verdict: 'reject', reason: 'tagged_plaintext' })
  const svc = await startHttpService(rt)
  try {
    const res = await fetch(`http://127.0.0.1:${svc.port}/metrics`)
    assert.equal(res.status, 200)
    const body = await res.text()
    for (const m of await metrics.registry.getMetricsAsJSON())
      if (m.name.startsWith('linksec_') && !m.name.includes('nodejs') && !m.name.includes('process'))
        assert.ok(m.values.length > 0, `${m.name} has a sample`)
    const r = promtoolCheck(body)
    assert.equal(r.output, '', 'promtool prints no lint problems')
    assert.equal(r.status, 0)
  } finally {
    await svc.close(100)
  }
})

test('the promtool check can fail: a misnamed counter is reported', (t) => {
  if (!needTools(t, { promtool: 'prometheus' })) return
  const r = promtoolCheck(
    '# HELP linksec_bad A counter without the suffix.\n# TYPE linksec_bad counter\nlinksec_bad 1\n',
  )
  assert.notEqual(r.status, 0)
  assert.match(r.output, /_total/)
})
