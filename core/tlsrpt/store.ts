/**
 * TLS outcomes counted per report day (UTC), policy domain and policy, with
 * failures grouped by their RFC 8460 failure-details fields. In-process, or in
 * Redis so that every linksec of a fleet adds to the same counts (one HINCRBY
 * per session) and one of them sends the day's report.
 */
import { connectRedis } from '../redis'
import type { SessionOutcome } from './outcome'
import type { ReportPolicy } from './policy'

export interface FailureGroup {
  resultType: string
  receivingMxHostname: string
  receivingIp?: string
  sendingMtaIp?: string
  failureReasonCode?: string
  count: number
}

export interface PolicyDay {
  policy: ReportPolicy
  successful: number
  failures: FailureGroup[]
}

export interface OutcomeStore {
  record(o: SessionOutcome): Promise<void>
  /** Every policy domain with outcomes on `day` (YYYY-MM-DD). */
  domains(day: string): Promise<string[]>
  counts(day: string, domain: string): Promise<PolicyDay[]>
  /** Claims the day's report for a domain; false when it was already sent (or claimed by another). */
  claim(day: string, domain: string): Promise<boolean>
  release(day: string, domain: string): Promise<void>
  close(): Promise<void>
}

/** Kept for a week: a report is about yesterday, and a failed send is retried. */
const KEEP_SECONDS = 8 * 24 * 3600

export function reportDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

function failureKey(o: SessionOutcome): string {
  const { result, receivingMxHostname, receivingIp, sendingMtaIp, failureReasonCode } = o
  return JSON.stringify([
    result,
    receivingMxHostname,
    receivingIp ?? '',
    sendingMtaIp ?? '',
    failureReasonCode ?? '',
  ])
}

function failureOf(key: string, count: number): FailureGroup {
  const [resultType, mx, ip, sending, reason] = JSON.parse(key) as string[]
  return {
    resultType: resultType!,
    receivingMxHostname: mx!,
    ...(ip ? { receivingIp: ip } : {}),
    ...(sending ? { sendingMtaIp: sending } : {}),
    ...(reason ? { failureReasonCode: reason } : {}),
    count,
  }
}

/** The field a count is kept under: the policy (JSON), then `s` or the failure key. */
function fieldOf(o: SessionOutcome): string {
  const policy = JSON.stringify(o.policy)
  return o.result === 'success' ? `${policy}\ns` : `${policy}\nf${failureKey(o)}`
}

function groupFields(fields: Record<string, number>): PolicyDay[] {
  const byPolicy = new Map<string, PolicyDay>()
  for (const [field, count] of Object.entries(fields)) {
    const nl = field.indexOf('\n')
    const policyJson = field.slice(0, nl)
    let day = byPolicy.get(policyJson)
    if (!day)
      byPolicy.set(
        policyJson,
        (day = { policy: JSON.parse(policyJson) as ReportPolicy, successful: 0, failures: [] }),
      )
    const rest = field.slice(nl + 1)
    if (rest === 's') day.successful += count
    else day.failures.push(failureOf(rest.slice(1), count))
  }
  return [...byPolicy.values()]
}

export function createMemoryStore(): OutcomeStore {
  const days = new Map<string, Map<string, Record<string, number>>>()
  const claimed = new Set<string>()
  return {
    async record(o) {
      const day = reportDay(o.at)
      const domains = days.get(day) ?? days.set(day, new Map()).get(day)!
      const fields =
        domains.get(o.policy.policyDomain) ??
        domains.set(o.policy.policyDomain, {}).get(o.policy.policyDomain)!
      const f = fieldOf(o)
      fields[f] = (fields[f] ?? 0) + 1
      for (const d of days.keys()) if (d < reportDay(o.at - KEEP_SECONDS * 1000)) days.delete(d)
    },
    async domains(day) {
      return [...(days.get(day)?.keys() ?? [])].sort()
    },
    async counts(day, domain) {
      return groupFields(days.get(day)?.get(domain) ?? {})
    },
    async claim(day, domain) {
      const k = `${day} ${domain}`
      if (claimed.has(k)) return false
      claimed.add(k)
      return true
    },
    async release(day, domain) {
      claimed.delete(`${day} ${domain}`)
    },
    async close() {},
  }
}

export function createRedisStore(opts: { url: string; prefix: string; timeoutMs: number }): OutcomeStore {
  // Failures reach the caller through its failed command; the client's own error events are quiet.
  const { client, ready, close } = connectRedis({ url: opts.url, timeoutMs: opts.timeoutMs })
  const dayKey = (day: string) => `${opts.prefix}tlsrpt:${day}`
  const countsKey = (day: string, domain: string) => `${opts.prefix}tlsrpt:${day}:${domain}`
  const sentKey = (day: string, domain: string) => `${opts.prefix}tlsrpt:sent:${day}:${domain}`
  return {
    async record(o) {
      await ready()
      const day = reportDay(o.at)
      const key = countsKey(day, o.policy.policyDomain)
      await client
        .multi()
        .hIncrBy(key, fieldOf(o), 1)
        .expire(key, KEEP_SECONDS)
        .sAdd(dayKey(day), o.policy.policyDomain)
        .expire(dayKey(day), KEEP_SECONDS)
        .exec()
    },
    async domains(day) {
      await ready()
      return (await client.sMembers(dayKey(day))).sort()
    },
    async counts(day, domain) {
      await ready()
      const raw = await client.hGetAll(countsKey(day, domain))
      return groupFields(Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)])))
    },
    async claim(day, domain) {
      await ready()
      const r = await client.set(sentKey(day, domain), String(Date.now()), {
        condition: 'NX',
        expiration: { type: 'EX', value: KEEP_SECONDS },
      })
      return r === 'OK'
    },
    async release(day, domain) {
      await ready()
      await client.del(sentKey(day, domain))
    },
    close,
  }
}
