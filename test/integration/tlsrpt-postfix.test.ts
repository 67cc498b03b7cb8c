/**
 * TLS reports from a real Postfix 3.7 (which tells policy servers nothing of
 * its TLS outcomes), read from its log: the private Postfix of
 * enforce-postfix.ts, with `linksec serve` as its TLS-policy socketmap and
 * [tlsrpt] postfix_log = its maillog_file, delivers to three real Haraka
 * receivers on loopback —
 *
 *   plain.test   no STARTTLS, MTA-STS enforce     -> starttls-not-supported
 *   tls.test     self-signed, MTA-STS enforce     -> certificate-not-trusted
 *   level4.test  test-CA certificate, no MTA-STS  -> success (no-policy-found)
 *
 * — and the counts serve keeps in Redis are exactly the sessions the log
 * shows (each deferred retry is one session), sent by `linksec tlsrpt send`
 * as RFC 8460 JSON to the HTTPS endpoint each domain publishes. A second
 * linksec of the fleet, a real Haraka running the plugin, delivers to
 * level4.test too and adds its session to the same Redis: one report holds
 * both instances' outcomes. Last, the same Postfix pointed at a linksec
 * with [socketmap] tlsrpt=true defers the mail (it does not know the 3.10
 * attributes), which is why false is the default.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { gunzipSync } from 'node:zlib'
import type { TlsReport } from '../../core/tlsrpt/report'
import { startEnforcePostfix, type EnforcePostfix } from '../helpers/enforce-postfix'
import { REPO_ROOT, startLinksecServe } from '../helpers/postfix'
import { privateHostsSupported } from '../helpers/postfix-hosts'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { PINNED_MX_PLUGIN, pinnedMxIni, submit } from '../helpers/receivers'
import { assertRfc8460Report } from '../helpers/tlsrpt-report'
import { startRedis, type TestRedis } from '../helpers/redis'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'

const BIN = path.join(REPO_ROOT, 'dist', 'bin', 'linksec.js')
const RUA = 'v=TLSRPTv1; rua=https://reports.test/tlsrpt'
const PREFIX = 'pf-tlsrpt:'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const stsPolicy = (mx: string) => `version: STSv1\nmode: enforce\nmx: ${mx}\nmax_age: 86400\n`

function linksec(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
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

/** Sessions the maillog shows for a recipient domain, counted with a plain grep (one recipient per message). */
function logged(maillog: string, domain: string, reason: RegExp): number {
  return maillog.split('\n').filter((l) => l.includes(`to=<bob@${domain}>`) && reason.test(l)).length
}

describe('TLS reports from a real Postfix 3.7, read from its log', { timeout: 240_000 }, () => {
  let env: EnforcePostfix | undefined
  let redis: TestRedis | undefined
  let haraka: HarakaInstance | undefined
  /** tls.test's counted failures after the first test, and a config dir to read them with. */
  let tlsFailures = -1
  let showConf = ''
  const posted: Buffer[] = []

  before(async () => {
    if (!which('postfix') || !which('redis-server') || !isRoot() || !privateHostsSupported()) return
    redis = await startRedis()
    env = await startEnforcePostfix({
      world: {
        zone: {
          '_mta-sts.plain.test': { TXT: ['v=STSv1; id=1;'] },
          '_mta-sts.tls.test': { TXT: ['v=STSv1; id=1;'] },
          '_smtp._tls.plain.test': { TXT: [RUA] },
          '_smtp._tls.tls.test': { TXT: [RUA] },
          '_smtp._tls.level4.test': { TXT: [RUA] },
        },
        hosts: ['mta-sts.plain.test', 'mta-sts.tls.test', 'reports.test'],
        routes: {
          // Postfix finds each domain's server by the domain's own name (enforce-postfix.ts).
          'mta-sts.plain.test/.well-known/mta-sts.txt': { body: stsPolicy('plain.test') },
          'mta-sts.tls.test/.well-known/mta-sts.txt': { body: stsPolicy('tls.test') },
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
      },
      serveIni: (pf) => ({
        tlsrpt: { postfix_log: path.join(pf.dir, 'log', 'maillog'), send: false },
        redis: { url: redis!.url, prefix: PREFIX },
      }),
    })
    // The fleet's other member: Haraka with linksec, same Redis, same DNS world.
    const iniDir = env.world.configIni({
      main: { domain: 'sender.test' },
      redis: { url: redis.url, prefix: PREFIX },
      tlsrpt: { send: false },
    })
    haraka = await startHaraka({
      plugins: ['tls', 'linksec', 'test_relay', 'pinned_mx'],
      localPlugins: { pinned_mx: PINNED_MX_PLUGIN },
      config: { 'pinned_mx.ini': pinnedMxIni(env.receivers), 'outbound.ini': 'local_mx_ok=true\n' },
      linksecIniText: fs.readFileSync(path.join(iniDir, 'linksec.ini'), 'utf8'),
    })
  })

  after(async () => {
    await haraka?.stop()
    await env?.stop()
    await redis?.stop()
  })

  it('counts exactly the sessions Postfix logged, with their RFC 8460 result types, and sends them', async (t) => {
    const tools = {
      postfix: 'postfix',
      'redis-server': 'redis-server',
      openssl: 'openssl',
      unshare: 'util-linux',
    }
    if (!needTools(t, tools)) return
    if (!needRoot(t, 'postfix start needs root')) return
    if (!privateHostsSupported()) {
      if (process.env.CI) throw new Error('unshare --mount with a bind mount is not permitted here')
      t.skip('needs a private mount namespace (unshare --mount, CAP_SYS_ADMIN)')
      return
    }
    assert.ok(env, 'peers did not start')
    const { pf, receivers, world } = env
    for (const domain of ['plain.test', 'tls.test', 'level4.test']) {
      const r = await submit({
        port: pf.port,
        from: 'alice@sender.test',
        to: [`bob@${domain}`],
        data: `From: alice@sender.test\r\nTo: bob@${domain}\r\nSubject: ${domain}\r\n\r\nhi\r\n`,
      })
      assert.ok(r.accepted, r.reply)
    }
    const viaHaraka = await submit({
      port: haraka!.port,
      from: 'alice@sender.test',
      to: ['carol@level4.test'],
      data: 'From: alice@sender.test\r\nTo: carol@level4.test\r\nSubject: via Haraka\r\n\r\nhi\r\n',
    })
    assert.ok(viaHaraka.accepted, viaHaraka.reply)
    await receivers.level4.haraka.waitForQueued(2, 60_000)
    // Both refused hops expire after the test's 10 s queue lifetime: two bounces, then no more sessions.
    await receivers.dsn.haraka.waitForQueued(2, 90_000)
    assert.equal(receivers.plain.got().length, 0, 'never sent in the clear under MTA-STS enforce')
    assert.equal(receivers.tls.got().length, 0, 'never sent to an untrusted certificate under enforce')

    const maillog = pf.maillog()
    const expected = {
      plain: logged(maillog, 'plain.test', /status=deferred \(TLS is required, but was not offered by host/),
      tls: logged(maillog, 'tls.test', /status=deferred \(Server certificate not verified\)/),
      level4: logged(maillog, 'level4.test', /status=sent/),
    }
    assert.ok(expected.plain >= 1 && expected.tls >= 1 && expected.level4 === 1, JSON.stringify(expected))
    // [socketmap] tlsrpt=false (the default): Postfix 3.7 read every policy reply without a complaint.
    assert.doesNotMatch(maillog, /warning: .*(socketmap|policy|tls_policy)/i)
    assert.match(
      maillog,
      /(?:Trusted|Verified) TLS connection established to level4\.test\[/,
      maillog
        .split('\n')
        .filter((l) => l.includes('level4'))
        .join('\n'),
    )

    const conf = world.configIni({
      main: { domain: 'sender.test' },
      redis: { url: redis!.url, prefix: PREFIX },
      tlsrpt: { organization: 'sender.test' },
    })
    showConf = conf
    tlsFailures = expected.tls
    // serve polls the log every second: wait (bounded) until it has read the last lines.
    let reports: TlsReport[] = []
    const summary = () =>
      Object.fromEntries(
        reports.map((r) => [
          r.policies[0]!.policy['policy-domain'],
          r.policies.map((p) => [
            p.summary['total-successful-session-count'],
            p.summary['total-failure-session-count'],
          ]),
        ]),
      )
    // level4.test: Postfix's session (from its log) and Haraka's, in one count.
    const want = {
      'level4.test': [[2, 0]],
      'plain.test': [[0, expected.plain]],
      'tls.test': [[0, expected.tls]],
    }
    for (const end = Date.now() + 20_000; Date.now() < end; await sleep(250)) {
      const shown = await linksec('tlsrpt', 'show', '--date', 'today', '--json', '--config', conf)
      assert.equal(shown.code, 0, shown.err)
      reports = JSON.parse(shown.out) as TlsReport[]
      if (JSON.stringify(summary()) === JSON.stringify(want)) break
    }
    assert.deepEqual(summary(), want, `${JSON.stringify(reports, null, 2)}\n${maillog.slice(-4000)}`)

    const sent = await linksec('tlsrpt', 'send', '--date', 'today', '--json', '--config', conf)
    assert.equal(sent.code, 0, sent.out + sent.err)
    assert.deepEqual(
      (JSON.parse(sent.out) as { domain: string; outcome: string }[]).map((r) => `${r.domain} ${r.outcome}`),
      ['level4.test sent', 'plain.test sent', 'tls.test sent'],
    )
    const by = new Map(
      posted
        .map((b) => JSON.parse(gunzipSync(b).toString()) as TlsReport)
        .map((r) => [r.policies[0]!.policy['policy-domain'], r]),
    )
    assert.equal(by.size, 3)
    for (const [domain, r] of by) {
      assertRfc8460Report(r, domain)
      assert.equal(r['organization-name'], 'sender.test')
      assert.match(r['report-id'], new RegExp(domain.replace('.', '\\.')))
      assert.match(r['date-range']['start-datetime'], /^\d{4}-\d{2}-\d{2}T00:00:00Z$/)
      assert.match(r['date-range']['end-datetime'], /^\d{4}-\d{2}-\d{2}T23:59:59Z$/)
      assert.equal(r.policies.length, 1)
    }
    for (const [domain, kind, result] of [
      ['plain.test', 'plain', 'starttls-not-supported'],
      ['tls.test', 'tls', 'certificate-not-trusted'],
    ] as const) {
      const p = by.get(domain)!.policies[0]!
      assert.equal(p.policy['policy-type'], 'sts')
      assert.deepEqual(p.policy['policy-string'], stsPolicy(domain).trimEnd().split('\n'))
      assert.deepEqual(p.policy['mx-host'], [domain])
      assert.deepEqual(
        p['failure-details'].map((f) => [
          f['result-type'],
          f['receiving-mx-hostname'],
          f['failed-session-count'],
        ]),
        [[result, domain, expected[kind]]],
      )
      assert.match(String(p['failure-details'][0]!['receiving-ip']), /^127\./)
    }
    // The verification error Postfix logged, as failure-reason-code (RFC 8460 §4.4).
    assert.equal(
      by.get('tls.test')!.policies[0]!['failure-details'][0]!['failure-reason-code'],
      'self-signed certificate',
    )
    const good = by.get('level4.test')!.policies[0]!
    assert.equal(good.policy['policy-type'], 'no-policy-found')
    assert.deepEqual(good['failure-details'], [])
  })

  it('[socketmap] tlsrpt=true is for Postfix 3.10+: Postfix 3.7 defers on such a reply (why the default is false)', async (t) => {
    if (!env) {
      t.skip('peers did not start (see the test above)')
      return
    }
    const { pf, world } = env
    const serve310 = await startLinksecServe({
      ini: {
        resolver: { servers: world.dns.address, timeout_ms: 2000 },
        net: { ca_file: world.ca.caFile, https_port: world.https.port, allow_private_addresses: true },
        socketmap: { tlsrpt: true },
      },
    })
    try {
      pf.postconf([`smtp_tls_policy_maps = socketmap:${serve310.socketmapAddress}:linksec`])
      await pf.reload()
      const from = pf.maillog().length
      const r = await submit({
        port: pf.port,
        from: 'alice@sender.test',
        to: ['dave@tls.test'],
        data: 'From: alice@sender.test\r\nTo: dave@tls.test\r\nSubject: 3.10 attributes\r\n\r\nhi\r\n',
      })
      assert.ok(r.accepted, r.reply)
      let tail = ''
      for (const end = Date.now() + 20_000; Date.now() < end; await sleep(250)) {
        tail = pf.maillog().slice(from)
        if (/to=<dave@tls\.test>.*status=/.test(tail)) break
      }
      // Postfix 3.7 does not know the attributes: the reply is a configuration problem, the mail waits.
      assert.match(
        tail,
        /warning: smtp_tls_policy_maps, next-hop destination "tls\.test": invalid attribute name: "policy_type"/,
      )
      assert.match(
        tail,
        /to=<dave@tls\.test>, relay=none, .*status=deferred \(client TLS configuration problem\)/,
      )
      // Our own configuration problem is no TLS outcome of tls.test: the log reader counts nothing for it.
      if (tlsFailures >= 0) {
        await sleep(2500) // serve reads the log every second
        const shown = await linksec('tlsrpt', 'show', '--date', 'today', '--json', '--config', showConf)
        const tls = (JSON.parse(shown.out) as TlsReport[]).find(
          (x) => x.policies[0]!.policy['policy-domain'] === 'tls.test',
        )!
        assert.equal(tls.policies[0]!.summary['total-failure-session-count'], tlsFailures)
      }
    } finally {
      await serve310.stop()
    }
  })
})
