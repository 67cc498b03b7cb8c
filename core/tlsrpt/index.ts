/**
 * TLS reports (RFC 8460) for a runtime: where outcomes are kept (Redis for a
 * fleet, else one in-process store), recording one session's outcome, and
 * sending a day's reports to every domain that asks for them (`_smtp._tls`).
 * Metrics: linksec_tlsrpt_sessions_total{result},
 * linksec_tlsrpt_reports_total{method,outcome}.
 */
import * as os from 'node:os'
import { Counter } from 'prom-client'
import { describeError } from '../errors'
import type { Metrics } from '../metrics'
import { engineService, sectionsKey } from '../engine'
import { dnsClientFor } from '../net/dns'
import { httpsClientFor } from '../net/https'
import type { DomainPolicy } from '../policy'
import type { Runtime } from '../runtime'
import { deliverReport, type DeliveryContext } from './deliver'
import { sessionResult, type SessionFacts } from './outcome'
import { reportPolicyOf } from './policy'
import { buildReport, gzipReport } from './report'
import { lookupReportUris } from './rua'
import { createMemoryStore, createRedisStore, reportDay, type OutcomeStore } from './store'

interface TlsrptMetrics {
  sessions: Counter<'result'>
  reports: Counter<'method' | 'outcome'>
}
const metricsByRegistry = new WeakMap<Metrics['registry'], TlsrptMetrics>()

export function tlsrptMetrics(m: Metrics): TlsrptMetrics {
  let t = metricsByRegistry.get(m.registry)
  if (!t) {
    t = {
      sessions: new Counter({
        name: 'linksec_tlsrpt_sessions_total',
        help: 'Outbound TLS sessions counted for TLS reports, by RFC 8460 result (success or a result type).',
        labelNames: ['result'],
        registers: [m.registry],
      }),
      reports: new Counter({
        name: 'linksec_tlsrpt_reports_total',
        help: 'TLS reports delivered or failed, by method (mailto, https) and outcome (sent, failed).',
        labelNames: ['method', 'outcome'],
        registers: [m.registry],
      }),
    }
    metricsByRegistry.set(m.registry, t)
  }
  return t
}

let memory: OutcomeStore | undefined

/**
 * The outcome store of this engine: in-process counts (one per process, so
 * they survive any reload), or a Redis store for [redis] url, built by the
 * engine and closed by it when a reload changes [redis] (docs/architecture.md,
 * the engine): a replaced prefix or URL leaves no connection behind.
 */
const outcomeStoreService = engineService<OutcomeStore>({
  name: 'tlsrpt-store',
  key: (c) => sectionsKey(c, ['redis']),
  build: (rt) => {
    const { url, prefix } = rt.config.redis
    if (!url) return (memory ??= createMemoryStore())
    return createRedisStore({ url, prefix, timeoutMs: 2000 })
  },
  close: (s) => s.close(),
})

export function outcomeStoreFor(rt: Runtime): OutcomeStore {
  return outcomeStoreService(rt)
}

export function organizationOf(rt: Runtime): string {
  return rt.config.tlsrpt.organization || rt.config.main.domain || os.hostname()
}

export interface SessionSeen extends SessionFacts {
  mxHost: string
  ip?: string
}

/** Counts one outbound session under the policy of its destination; never throws (best effort). */
export async function recordSession(rt: Runtime, policy: DomainPolicy, s: SessionSeen): Promise<void> {
  if (!rt.config.tlsrpt.enabled) return
  const rp = reportPolicyOf(policy)
  const seen = sessionResult(s, rp.policyType)
  if (!seen) return
  // An MTA-STS policy announced but not usable fails every session under it (RFC 8460 §4.3.2).
  const result = rp.failure ?? seen
  tlsrptMetrics(rt.metrics).sessions.inc({ result })
  const policyReason = rp.failure && policy.sources.find((x) => x.source === 'mta_sts')?.reason
  const reason = result === 'success' ? undefined : policyReason || s.certError || s.tlsError
  try {
    await outcomeStoreFor(rt).record({
      policy: rp,
      result,
      receivingMxHostname: s.mxHost,
      receivingIp: s.ip,
      failureReasonCode: reason?.slice(0, 200),
      at: rt.now(),
    })
  } catch (e) {
    rt.log.warn('TLS report outcome not recorded', { domain: rp.policyDomain, error: describeError(e) })
  }
}

export interface SendResult {
  domain: string
  uri?: string
  outcome: 'sent' | 'failed' | 'no_rua' | 'already_sent'
  error?: string
}

function deliveryContext(rt: Runtime): DeliveryContext {
  const org = organizationOf(rt)
  const [host, port] = rt.config.tlsrpt.relay.split(/:(?=\d+$)/)
  return {
    https: httpsClientFor(rt),
    timeoutMs: rt.config.net.timeout_ms,
    mail: {
      relayHost: host!.replace(/^\[|\]$/g, ''),
      relayPort: Number(port ?? 25),
      from: rt.config.tlsrpt.from || `noreply-tlsrpt@${org}`,
      submitter: rt.config.main.authserv_id || org,
    },
  }
}

/** Builds and delivers the reports of `day` (YYYY-MM-DD) for every domain with outcomes. */
export async function sendReports(
  rt: Runtime,
  day: string,
  store = outcomeStoreFor(rt),
): Promise<SendResult[]> {
  const out: SendResult[] = []
  const ctx = deliveryContext(rt)
  const m = tlsrptMetrics(rt.metrics)
  for (const domain of await store.domains(day)) {
    const uris = await lookupReportUris(dnsClientFor(rt), domain).catch(() => [])
    if (uris.length === 0) {
      out.push({ domain, outcome: 'no_rua' })
      continue
    }
    if (!(await store.claim(day, domain))) {
      out.push({ domain, outcome: 'already_sent' })
      continue
    }
    const org = organizationOf(rt)
    const contact = rt.config.tlsrpt.contact || `postmaster@${org}`
    const report = buildReport({
      organization: org,
      contact,
      day,
      domain,
      days: await store.counts(day, domain),
    })
    const gz = gzipReport(report)
    let sent = 0
    for (const uri of uris) {
      try {
        await deliverReport(ctx, uri, domain, report, gz)
        m.reports.inc({ method: uri.kind, outcome: 'sent' })
        out.push({ domain, uri: uri.uri, outcome: 'sent' })
        sent++
      } catch (e) {
        m.reports.inc({ method: uri.kind, outcome: 'failed' })
        out.push({ domain, uri: uri.uri, outcome: 'failed', error: describeError(e) })
        rt.log.warn('TLS report not delivered', { domain, uri: uri.uri, error: describeError(e) })
      }
    }
    // Nothing got through: let the next run (or another instance) try again.
    if (sent === 0) await store.release(day, domain)
  }
  return out
}

const DAY_MS = 24 * 3600 * 1000

export function yesterday(nowMs: number): string {
  return reportDay(nowMs - DAY_MS)
}
/**
 * Days the daily send still tries: yesterday and the day before, so a report
 * whose delivery failed late in the day (or a process down over midnight) is
 * sent on the next run. Older days are left: the store keeps a week for
 * `linksec tlsrpt send --date`.
 */
export const SEND_DAYS = 2

/**
 * One run of the daily send at the runtime's clock: the reports of the last
 * SEND_DAYS days not yet sent. Every domain's report is claimed before it is
 * sent and released when no delivery got through (sendReports), so runs
 * every hour send each report once — once for the fleet with Redis, and
 * again after a failure.
 */
export async function dailyReportRun(rt: Runtime): Promise<SendResult[]> {
  if (!rt.config.tlsrpt.enabled || !rt.config.tlsrpt.send) return []
  const out: SendResult[] = []
  for (let back = SEND_DAYS; back >= 1; back--)
    out.push(...(await sendReports(rt, reportDay(rt.now() - back * DAY_MS))))
  return out
}

/** The daily send's schedule: a minute after start (a process restarted every day still sends), then hourly. */
export const FIRST_RUN_MS = 60_000
export const RUN_EVERY_MS = 3600 * 1000

/**
 * The daily send, in serve and in the Haraka plugin: dailyReportRun a minute
 * after start and then every hour. `current` gives the runtime in force
 * (Haraka swaps it on a config reload); a run still going when the next is
 * due is not doubled.
 */
export function startDailyReports(
  current: Runtime | (() => Runtime),
  run: (rt: Runtime) => Promise<unknown> = dailyReportRun,
): () => void {
  const rtNow = typeof current === 'function' ? current : () => current
  let running = false
  const tick = () => {
    if (running) return
    const rt = rtNow()
    running = true
    run(rt)
      .catch((e: unknown) => rt.log.warn('TLS reports not sent', { error: describeError(e) }))
      .finally(() => (running = false))
  }
  const first = setTimeout(tick, FIRST_RUN_MS)
  const timer = setInterval(tick, RUN_EVERY_MS)
  first.unref()
  timer.unref()
  return () => {
    clearTimeout(first)
    clearInterval(timer)
  }
}
