/**
 * TLS reports (RFC 8460) end to end with real peers on loopback: a Haraka
 * running linksec relays untagged mail to three real receivers — no STARTTLS
 * under an MTA-STS policy in mode testing (plain.test: delivered anyway,
 * RFC 8461 §5, and reported under policy-type sts), a self-signed certificate under an enforced MTA-STS policy
 * (tls.test), a certificate from the test CA (level4.test) — and counts each
 * session in Redis. A second linksec instance adds to the same counts.
 * `linksec tlsrpt send` then reads the day's counts, finds each domain's
 * `_smtp._tls` record in the test DNS, and delivers the reports by mail
 * (through a receiving Haraka) and by HTTPS POST (the world's HTTPS server);
 * both are parsed and checked against the RFC 8460 fields.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { gunzipSync } from 'node:zlib'
import { loadConfig } from '../../core/config'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { combine } from '../../core/policy/combine'
import { createRuntime } from '../../core/runtime'
import { outcomeStoreFor, recordSession } from '../../core/tlsrpt'
import type { TlsReport } from '../../core/tlsrpt/report'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { PEERS_DIR, REPO_ROOT } from '../helpers/postfix'
import { freePort } from '../helpers/ports'
import {
  PINNED_MX_PLUGIN,
  pinnedMxIni,
  startReceivers,
  stopReceivers,
  submit,
  type Receiver,
  type ReceiverKind,
} from '../helpers/receivers'
import { testCa } from '../helpers/test-ca'
import { assertRfc8460Report } from '../helpers/tlsrpt-report'
import { needTools } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const BIN = path.join(REPO_ROOT, 'dist', 'bin', 'linksec.js')
const RUA = 'v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,https://reports.test/tlsrpt'

function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
  })
}

/** The gzipped JSON inside a mailed report (RFC 8460 §5.3). */
function reportFromMail(raw: string): TlsReport {
  assert.match(raw, /Content-Type: multipart\/report; report-type="tlsrpt"/)
  const part = raw.split(/\r?\n--/).find((p) => /Content-Type: application\/tlsrpt\+gzip/.test(p))!
  const b64 = part.split(/\r?\n\r?\n/)[1]!.replace(/\s+/g, '')
  return JSON.parse(gunzipSync(Buffer.from(b64, 'base64')).toString()) as TlsReport
}

function checkShape(r: TlsReport, domain: string): void {
  assertRfc8460Report(r, domain)
  assert.match(r['date-range']['start-datetime'], /^\d{4}-\d{2}-\d{2}T00:00:00Z$/)
  assert.equal(r.policies.length, 1)
}

/**
 * TLS sessions Haraka's own outbound logged with a self-signed certificate
 * (only tls.test has one): what happened, in Haraka's words, not linksec's.
 * (The receiver's `[tls] secured` line is no count: on Node 24 a client that
 * hangs up right after the handshake leaves none.)
 */
function selfSignedSessions(h: HarakaInstance): number {
  return (h.log().match(/\[outbound\] secured verified=false .*error=DEPTH_ZERO_SELF_SIGNED_CERT/g) ?? [])
    .length
}

describe('TLS reports from Haraka outbound, delivered by mail and HTTPS', { timeout: 240_000 }, () => {
  let world: World
  let receivers: Record<ReceiverKind, Receiver> | undefined
  let sender: HarakaInstance | undefined
  let reportSink: HarakaInstance | undefined
  let redisDir: string | undefined
  let redisUrl = ''
  const posted: Buffer[] = []
  let ready = false

  before(async () => {
    if (!process.env.CI && !fs.existsSync('/usr/bin/redis-server')) return
    process.env.NODE_EXTRA_CA_CERTS = testCa().caFile
    const port = await freePort()
    const r = await run('bash', [path.join(PEERS_DIR, 'redis-up.sh')], { PORT: String(port) })
    redisDir = /export REDIS_DIR='([^']+)'/.exec(r.out)?.[1]
    redisUrl = /export REDIS_URL='([^']+)'/.exec(r.out)?.[1] ?? ''
    world = await startWorld({
      zone: {
        '_mta-sts.tls.test': { TXT: ['v=STSv1; id=1;'] },
        '_mta-sts.plain.test': { TXT: ['v=STSv1; id=1;'] },
        '_smtp._tls.plain.test': { TXT: [RUA] },
        '_smtp._tls.tls.test': { TXT: [RUA] },
        '_smtp._tls.level4.test': { TXT: [RUA] },
      },
      hosts: ['mta-sts.tls.test', 'mta-sts.plain.test', 'reports.test'],
      routes: {
        'mta-sts.tls.test/.well-known/mta-sts.txt': {
          body: 'version: STSv1\nmode: enforce\nmx: mx.tls.test\nmax_age: 86400\n',
        },
        'mta-sts.plain.test/.well-known/mta-sts.txt': {
          body: 'version: STSv1\nmode: testing\nmx: mx.plain.test\nmax_age: 604800\n',
        },
        'reports.test/tlsrpt': (req, res) => {
          const chunks: Buffer[] = []
          req.on('data', (c: Buffer) => chunks.push(c))
          req.on('end', () => {
            if (req.method === 'POST' && req.headers['content-type'] === 'application/tlsrpt+gzip')
              posted.push(Buffer.concat(chunks))
            res.writeHead(201).end()
          })
        },
      },
    })
    receivers = await startReceivers()
    reportSink = await startHaraka({ plugins: ['test_sink'] })
    const ini = {
      main: { level: 4, mailboxes_tls_only: true, domain: 'sender.test' },
      redis: { url: redisUrl, prefix: 'tlsrpt-test:' },
      tlsrpt: { relay: `127.0.0.1:${reportSink.port}`, organization: 'sender.test' },
      enforce: { tls_retry_window: 0 },
    }
    const iniText = fs.readFileSync(path.join(world.configIni(ini), 'linksec.ini'), 'utf8')
    sender = await startHaraka({
      plugins: ['tls', 'linksec', 'test_relay', 'pinned_mx'],
      localPlugins: { pinned_mx: PINNED_MX_PLUGIN },
      config: {
        'pinned_mx.ini': pinnedMxIni(receivers),
        'outbound.ini': 'local_mx_ok=true\ntemp_fail_intervals=5s\n',
      },
      linksecIniText: `${iniText}\n[http]\nlisten=127.0.0.1:0\n`,
    })
    ready = true
  })

  after(async () => {
    await sender?.stop()
    await reportSink?.stop()
    await stopReceivers(receivers)
    await world?.close()
    if (redisDir) await run('bash', [path.join(PEERS_DIR, 'peer-down.sh'), redisDir])
    delete process.env.NODE_EXTRA_CA_CERTS
  })

  it('counts each session with its RFC 8460 result and sends one report per domain', async (t) => {
    if (!needTools(t, { 'redis-server': 'redis-server', swaks: 'swaks', openssl: 'openssl' }) || !ready)
      return
    for (const kind of ['plain', 'tls', 'level4'] as const) {
      const to = `bob@${receivers![kind].domain}`
      const r = await submit({
        port: sender!.port,
        from: 'alice@sender.test',
        to: [to],
        data: `Subject: ${kind}\r\n\r\nhi\r\n`,
      })
      assert.ok(r.accepted, r.reply)
    }
    // mode testing enforces nothing: the mail goes in clear to the receiver without STARTTLS.
    await receivers!.plain.haraka.waitForQueued(1, 60_000)
    await receivers!.level4.haraka.waitForQueued(1, 60_000)
    // The refused tls.test hop: its DSN reaches the senders' domain.
    await receivers!.dsn.haraka.waitForQueued(1, 60_000)

    // A second linksec instance of the fleet adds one more session to level4.test's count.
    const other = createRuntime(
      loadConfig(world.configIni({ redis: { url: redisUrl, prefix: 'tlsrpt-test:' } })),
      {
        log: silentLogger,
        metrics: createMetrics({ processMetrics: false }),
      },
    )
    const noPolicy = combine('level4.test', [{ source: 'txt', outcome: 'none', reason: 'no record' }])
    await recordSession(other, noPolicy, {
      sawEhlo: true,
      tls: true,
      offersStartTls: true,
      certVerified: true,
      mxHost: 'mx.level4.test',
    })
    await outcomeStoreFor(other).close()
    await sleep(1000) // the sender counts a session when its socket closes

    const conf = world.configIni({
      main: { domain: 'sender.test' },
      redis: { url: redisUrl, prefix: 'tlsrpt-test:' },
      tlsrpt: { relay: `127.0.0.1:${reportSink!.port}`, organization: 'sender.test' },
    })
    const shown = await run(process.execPath, [BIN, 'tlsrpt', 'show', '--date', 'today', '--config', conf])
    assert.match(
      shown.out,
      /plain\.test sts: 0 ok, 1 failed \[starttls-not-supported mx\.plain\.test x1\]/,
      shown.out + shown.err,
    )
    assert.match(shown.out, /tls\.test sts: 0 ok, \d+ failed \[certificate-not-trusted mx\.tls\.test/)
    assert.match(shown.out, /level4\.test no-policy-found: 2 ok, 0 failed/)

    const sent = await run(process.execPath, [
      BIN,
      'tlsrpt',
      'send',
      '--date',
      'today',
      '--json',
      '--config',
      conf,
    ])
    assert.equal(sent.code, 0, sent.out + sent.err)
    const results = JSON.parse(sent.out) as { domain: string; outcome: string }[]
    assert.equal(results.filter((r) => r.outcome === 'sent').length, 6, sent.out)
    // Sent once: a second run finds the day claimed.
    const again = JSON.parse(
      (await run(process.execPath, [BIN, 'tlsrpt', 'send', '--date', 'today', '--json', '--config', conf]))
        .out,
    )
    // (sender.test, where the DSN went, publishes no _smtp._tls: no_rua both times.)
    const repeated = (again as { outcome: string }[]).filter((r) => r.outcome !== 'no_rua')
    assert.deepEqual(
      repeated.map((r) => r.outcome),
      ['already_sent', 'already_sent', 'already_sent'],
    )

    const tlsSessions = selfSignedSessions(sender!)
    assert.ok(tlsSessions >= 1, sender!.log().slice(-6000))
    const mailed = (await reportSink!.waitForQueued(3, 30_000)).map((m) => ({
      to: m.rcptTo,
      report: reportFromMail(m.raw),
    }))
    const https = posted.map((b) => JSON.parse(gunzipSync(b).toString()) as TlsReport)
    assert.equal(https.length, 3)
    for (const reports of [mailed.map((m) => m.report), https]) {
      const by = new Map(reports.map((r) => [r.policies[0]!.policy['policy-domain'], r]))
      for (const d of ['plain.test', 'tls.test', 'level4.test']) checkShape(by.get(d)!, d)
      const plain = by.get('plain.test')!.policies[0]!
      assert.deepEqual(plain.summary, {
        'total-successful-session-count': 0,
        'total-failure-session-count': 1,
      })
      assert.equal(plain['failure-details'][0]!['result-type'], 'starttls-not-supported')
      // The testing policy is the policy (RFC 8460 §4.4), not no-policy-found.
      assert.deepEqual(plain.policy, {
        'policy-type': 'sts',
        'policy-string': ['version: STSv1', 'mode: testing', 'mx: mx.plain.test', 'max_age: 604800'],
        'policy-domain': 'plain.test',
        'mx-host': ['mx.plain.test'],
      })
      const sts = by.get('tls.test')!.policies[0]!
      assert.equal(sts.policy['policy-type'], 'sts')
      assert.deepEqual(sts.policy['policy-string'], [
        'version: STSv1',
        'mode: enforce',
        'mx: mx.tls.test',
        'max_age: 86400',
      ])
      assert.deepEqual(sts.policy['mx-host'], ['mx.tls.test'])
      assert.equal(sts.summary['total-successful-session-count'], 0)
      // Every TLS session Haraka made to the self-signed receiver was one counted failure.
      assert.equal(sts.summary['total-failure-session-count'], tlsSessions, sender!.log().slice(-6000))
      assert.ok(sts['failure-details'].every((f) => f['result-type'] === 'certificate-not-trusted'))
      const good = by.get('level4.test')!.policies[0]!
      assert.deepEqual(good.summary, {
        'total-successful-session-count': 2,
        'total-failure-session-count': 0,
      })
      assert.equal(by.get('plain.test')!['organization-name'], 'sender.test')
    }
    assert.ok(mailed.every((m) => m.to.includes('tlsrpt@reports.test')))
  })
})
