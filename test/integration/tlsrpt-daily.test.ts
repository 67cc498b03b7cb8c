/**
 * The daily TLS-report send (core/tlsrpt dailyReportRun, run hourly by
 * `linksec serve` and the Haraka plugin) on an injected clock, against a real
 * Redis (the fleet's store) and the world's real HTTPS server as the `rua`
 * endpoint: each day's report goes out once, after its day boundary; not
 * again on the next hourly runs, after a reload, or after a restart (a new
 * engine, a new Redis connection); a failed delivery is retried on the next
 * run, past midnight too; and the metrics say sent/failed. And a domain
 * whose MTA-STS policy is announced but cannot be used (404, not a policy,
 * a certificate for another name) gets each session counted as the RFC 8460
 * §4.3.2 policy failure, through linksec's real resolver on that world.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gunzipSync } from 'node:zlib'
import { loadConfig, type LinksecConfig } from '../../core/config'
import { Engine } from '../../core/engine'
import { silentLogger } from '../../core/log'
import { createMetrics, type Metrics } from '../../core/metrics'
import { combine } from '../../core/policy/combine'
import { policyResolverFor } from '../../core/policy'
import { dailyReportRun, outcomeStoreFor, recordSession } from '../../core/tlsrpt'
import { buildReport } from '../../core/tlsrpt/report'
import type { TlsReport } from '../../core/tlsrpt/report'
import { startRedis, type TestRedis } from '../helpers/redis'
import { assertRfc8460Report } from '../helpers/tlsrpt-report'
import { needTools, which } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

const HOUR = 3600 * 1000
const D0 = Date.parse('2026-03-10T00:00:00Z')
const at = (day: number, hour: number) => D0 + day * 24 * HOUR + hour * HOUR

describe('the daily TLS-report send, on an injected clock', { timeout: 120_000 }, () => {
  let world: World
  let redis: TestRedis | undefined
  const posted: TlsReport[] = []
  /** How many POSTs to refuse (503) before accepting again. */
  let refuse = 0

  before(async () => {
    world = await startWorld({
      zone: {
        '_smtp._tls.a.test': { TXT: ['v=TLSRPTv1; rua=https://reports.test/tlsrpt'] },
        '_mta-sts.gone.test': { TXT: ['v=STSv1; id=1;'] },
        '_mta-sts.junk.test': { TXT: ['v=STSv1; id=1;'] },
        '_mta-sts.badcert.test': { TXT: ['v=STSv1; id=1;'] },
      },
      hosts: ['reports.test', 'mta-sts.gone.test', 'mta-sts.junk.test', 'mta-sts.badcert.test'],
      routes: {
        'mta-sts.gone.test/.well-known/mta-sts.txt': { status: 404, body: 'not here' },
        'mta-sts.junk.test/.well-known/mta-sts.txt': { body: 'this is not an MTA-STS policy\n' },
        'mta-sts.badcert.test/.well-known/mta-sts.txt': {
          body: 'version: STSv1\nmode: enforce\nmx: mx.badcert.test\nmax_age: 86400\n',
        },
        'reports.test/tlsrpt': (req, res) => {
          const chunks: Buffer[] = []
          req.on('data', (c: Buffer) => chunks.push(c))
          req.on('end', () => {
            if (refuse > 0) {
              refuse--
              res.writeHead(503).end()
              return
            }
            posted.push(JSON.parse(gunzipSync(Buffer.concat(chunks)).toString()) as TlsReport)
            res.writeHead(201).end()
          })
        },
      },
    })
    world.https.certFault('mta-sts.badcert.test', 'wrong-name')
    if (which('redis-server')) redis = await startRedis()
  })
  after(async () => {
    await world?.close()
    await redis?.stop()
  })

  const noPolicy = combine('a.test', [{ source: 'txt', outcome: 'none', reason: 'no record' }])
  const tlsUp = { sawEhlo: true, tls: true, offersStartTls: true, certVerified: true, mxHost: 'mx.a.test' }
  const noTls = { sawEhlo: true, tls: false, offersStartTls: false, certVerified: false, mxHost: 'mx.a.test' }

  /** One linksec process: an engine whose clock the test moves. */
  function linksecProcess(config: LinksecConfig, metrics: Metrics) {
    let now = 0
    const engine = new Engine(config, { log: silentLogger, metrics, now: () => now })
    return {
      engine,
      setNow: (ms: number) => (now = ms),
      run: async (ms: number) => {
        now = ms
        return (await dailyReportRun(engine.runtime)).filter((r) => r.outcome !== 'no_rua')
      },
    }
  }

  const days = () => posted.map((r) => r['date-range']['start-datetime'].slice(0, 10))
  const counts = (r: TlsReport) => r.policies[0]!.summary

  it('with Redis: once per day boundary, not again after a reload or a restart, retried after a failure', async (t) => {
    if (!needTools(t, { 'redis-server': 'redis-server' })) return
    posted.length = 0
    const metrics = createMetrics({ processMetrics: false })
    const config = world.config({
      redis: { url: redis!.url, prefix: 'daily:' },
      main: { domain: 'sender.test' },
    })
    const p = linksecProcess(config, metrics)

    p.setNow(at(0, 9))
    await recordSession(p.engine.runtime, noPolicy, tlsUp)
    await recordSession(p.engine.runtime, noPolicy, noTls)
    assert.deepEqual(await p.run(at(0, 23)), [], 'nothing before the day is over')
    assert.deepEqual(posted, [])

    const first = await p.run(at(1, 0.5))
    assert.deepEqual(
      first.map((r) => r.outcome),
      ['sent'],
    )
    assert.deepEqual(days(), ['2026-03-10'])
    assert.deepEqual(counts(posted[0]!), {
      'total-successful-session-count': 1,
      'total-failure-session-count': 1,
    })
    assert.deepEqual(
      (await p.run(at(1, 1.5))).map((r) => r.outcome),
      ['already_sent'],
      'the next hourly run',
    )

    // A reload (another [tlsrpt] organization): the store is kept, the claim holds.
    await p.engine.reconfigure(
      loadConfig(
        world.configIni({
          redis: { url: redis!.url, prefix: 'daily:' },
          main: { domain: 'sender.test' },
          tlsrpt: { organization: 'Other' },
        }),
      ),
    )
    assert.deepEqual(
      (await p.run(at(1, 2.5))).map((r) => r.outcome),
      ['already_sent'],
    )
    // A restart: a new engine with its own Redis connection (the other one is closed).
    await p.engine.close()
    const q = linksecProcess(config, metrics)
    assert.deepEqual(
      (await q.run(at(1, 3.5))).map((r) => r.outcome),
      ['already_sent'],
    )
    assert.equal(posted.length, 1, 'sent once for the day')

    // The next day's outcomes, and its report refused once: sent on the run after.
    q.setNow(at(1, 12))
    await recordSession(q.engine.runtime, noPolicy, tlsUp)
    refuse = 1
    const failed = await q.run(at(2, 0.25))
    assert.deepEqual(
      failed.map((r) => [r.outcome, r.error]),
      [
        ['already_sent', undefined],
        ['failed', 'https://reports.test/tlsrpt answered HTTP 503'],
      ],
    )
    assert.equal(posted.length, 1)
    const retried = await q.run(at(2, 1.25))
    assert.deepEqual(
      retried.map((r) => r.outcome),
      ['already_sent', 'sent'],
    )
    assert.deepEqual(days(), ['2026-03-10', '2026-03-11'])
    assert.deepEqual(counts(posted[1]!), {
      'total-successful-session-count': 1,
      'total-failure-session-count': 0,
    })

    // Refused until after midnight: the day before yesterday is still tried.
    q.setNow(at(2, 22))
    await recordSession(q.engine.runtime, noPolicy, noTls)
    refuse = 1000
    assert.deepEqual(
      (await q.run(at(3, 23.5))).map((r) => r.outcome),
      ['already_sent', 'failed'],
    )
    refuse = 0
    assert.deepEqual(
      (await q.run(at(4, 0.5))).map((r) => r.outcome),
      ['sent'],
    )
    assert.deepEqual(days(), ['2026-03-10', '2026-03-11', '2026-03-12'])
    assert.deepEqual(counts(posted[2]!), {
      'total-successful-session-count': 0,
      'total-failure-session-count': 1,
    })

    for (const r of posted) assertRfc8460Report(r, 'a.test')
    const text = await metrics.registry.metrics()
    assert.match(text, /linksec_tlsrpt_reports_total\{method="https",outcome="sent"\} 3/)
    assert.match(text, /linksec_tlsrpt_reports_total\{method="https",outcome="failed"\} 2/)
    await q.engine.close()
  })

  it('without Redis: the in-process counts keep their claim across a reload', async () => {
    posted.length = 0
    const metrics = createMetrics({ processMetrics: false })
    const p = linksecProcess(world.config({ main: { domain: 'sender.test' } }), metrics)
    p.setNow(at(10, 9))
    await recordSession(p.engine.runtime, noPolicy, tlsUp)
    assert.deepEqual(
      (await p.run(at(11, 0.1))).map((r) => r.outcome),
      ['sent'],
    )
    await p.engine.reconfigure(world.config({ main: { domain: 'sender.test' }, tlsrpt: { contact: 'x' } }))
    assert.deepEqual(
      (await p.run(at(11, 1.1))).map((r) => r.outcome),
      ['already_sent'],
    )
    assert.deepEqual(days(), ['2026-03-20'])
    // [tlsrpt] send=false: the run sends nothing.
    await p.engine.reconfigure(world.config({ tlsrpt: { send: false } }))
    p.setNow(at(11, 9))
    await recordSession(p.engine.runtime, noPolicy, tlsUp)
    assert.deepEqual(await p.run(at(12, 0.1)), [])
    assert.equal(posted.length, 1)
    await p.engine.close()
  })

  it('an MTA-STS policy announced but unusable: each session is that policy failure, under policy-type sts', async () => {
    const metrics = createMetrics({ processMetrics: false })
    const p = linksecProcess(world.config({ main: { domain: 'sender.test' } }), metrics)
    p.setNow(at(20, 9))
    const rt = p.engine.runtime
    for (const domain of ['gone.test', 'junk.test', 'badcert.test']) {
      const policy = await policyResolverFor(rt).resolve(domain)
      await recordSession(rt, policy, { ...tlsUp, mxHost: `mx.${domain}` })
      await recordSession(rt, policy, { ...noTls, mxHost: `mx.${domain}` })
    }
    const store = outcomeStoreFor(rt)
    const got: Record<string, unknown> = {}
    for (const domain of await store.domains('2026-03-30')) {
      const report = buildReport({
        organization: 'o',
        contact: 'c',
        day: '2026-03-30',
        domain,
        days: await store.counts('2026-03-30', domain),
      })
      assertRfc8460Report(report, domain)
      const pol = report.policies[0]!
      got[domain] = [
        pol.policy['policy-type'],
        pol.summary,
        pol['failure-details'].map((f) => f['result-type']),
        pol['failure-details'].every((f) => /mta-sts\.txt failed/.test(String(f['failure-reason-code']))),
      ]
    }
    const failed2 = { 'total-successful-session-count': 0, 'total-failure-session-count': 2 }
    assert.deepEqual(got, {
      'badcert.test': ['sts', failed2, ['sts-webpki-invalid'], true],
      'gone.test': ['sts', failed2, ['sts-policy-fetch-error'], true],
      'junk.test': ['sts', failed2, ['sts-policy-invalid'], true],
    })
    await p.engine.close()
  })
})
