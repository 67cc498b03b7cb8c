/**
 * `linksec tlsrpt show [--date D] [--json]` prints the RFC 8460 report each
 * policy domain would get for day D (default today); `linksec tlsrpt send
 * [--date D]` delivers day D's reports (default yesterday) to every domain
 * that publishes `_smtp._tls` and has not had its report for that day.
 * Outcomes live in Redis ([redis] url) when Haraka and serve are to share
 * them with this command; without Redis each process keeps its own.
 * Exit: 0 done, 1 a delivery failed, 2 usage.
 */
import { createLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime, type Runtime } from '../../core/runtime'
import { organizationOf, outcomeStoreFor, sendReports, yesterday } from '../../core/tlsrpt'
import { buildReport } from '../../core/tlsrpt/report'
import { reportDay } from '../../core/tlsrpt/store'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

export const USAGE =
  'usage: linksec tlsrpt show|send [--date YYYY-MM-DD|today|yesterday] [--json] [--config DIR]\n'

function dayOf(flag: string | true | undefined, fallback: string, now: number): string | undefined {
  if (flag === undefined) return fallback
  if (flag === 'today') return reportDay(now)
  if (flag === 'yesterday') return yesterday(now)
  return typeof flag === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(flag) ? flag : undefined
}

async function show(rt: Runtime, day: string, json: boolean): Promise<number> {
  const store = outcomeStoreFor(rt)
  const org = organizationOf(rt)
  const reports = []
  for (const domain of await store.domains(day)) {
    const days = await store.counts(day, domain)
    reports.push(
      buildReport({
        organization: org,
        contact: rt.config.tlsrpt.contact || `postmaster@${org}`,
        day,
        domain,
        days,
      }),
    )
  }
  if (json) process.stdout.write(JSON.stringify(reports, null, 2) + '\n')
  else if (reports.length === 0)
    process.stdout.write(
      `no TLS outcomes recorded for ${day}${rt.config.redis.url ? '' : ' (no [redis] url: this process keeps none)'}\n`,
    )
  for (const r of json ? [] : reports)
    for (const p of r.policies)
      process.stdout.write(
        `${p.policy['policy-domain']} ${p.policy['policy-type']}: ${p.summary['total-successful-session-count']} ok, ${p.summary['total-failure-session-count']} failed` +
          p['failure-details']
            .map((f) => ` [${f['result-type']} ${f['receiving-mx-hostname']} x${f['failed-session-count']}]`)
            .join('') +
          '\n',
      )
  return 0
}

async function send(rt: Runtime, day: string, json: boolean): Promise<number> {
  const results = await sendReports(rt, day)
  if (json) process.stdout.write(JSON.stringify(results, null, 2) + '\n')
  else
    for (const r of results)
      process.stdout.write(
        `${r.domain}: ${r.outcome}${r.uri ? ` ${r.uri}` : ''}${r.error ? ` (${r.error})` : ''}\n`,
      )
  return results.some((r) => r.outcome === 'failed') ? 1 : 0
}

export const OPTIONS = { date: { type: 'string' }, json: { type: 'boolean' } } satisfies OptionTable

export async function run(args: ParsedArgs): Promise<number> {
  const [verb, ...rest] = args.positional
  if ((verb !== 'show' && verb !== 'send') || rest.length > 0) {
    process.stderr.write(USAGE)
    return 2
  }
  const config = configFromArgs(args)
  const rt = createRuntime(config, {
    log: createLogger({ level: 'warn', format: 'text' }),
    metrics: createMetrics({ processMetrics: false }),
  })
  const now = rt.now()
  const day = dayOf(args.flags.date, verb === 'show' ? reportDay(now) : yesterday(now), now)
  if (!day) {
    process.stderr.write(`linksec tlsrpt: --date must be YYYY-MM-DD, today or yesterday\n${USAGE}`)
    return 2
  }
  // The Redis client is unref'd (it never keeps serve or Haraka alive): hold the loop open while we wait on it.
  const keepAlive = setInterval(() => {}, 60_000)
  try {
    return verb === 'show'
      ? await show(rt, day, Boolean(args.flags.json))
      : await send(rt, day, Boolean(args.flags.json))
  } finally {
    await outcomeStoreFor(rt).close()
    clearInterval(keepAlive)
  }
}
