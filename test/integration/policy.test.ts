/**
 * The policy resolver against a private world on loopback: a real DNS
 * server (with the AD bit per name) and HTTPS policy hosts with a test CA,
 * through the real DNS and HTTPS clients. Domains are named for what they
 * publish or how they fail.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../core/config'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { policyResolverFor, type DomainPolicy } from '../../core/policy'
import { createRuntime } from '../../core/runtime'
import { redirect } from '../helpers/https-server'
import { startWorld, type IniSections, type World } from '../helpers/world'

const policy = (mode: string, mx: string[], maxAge = 86400) =>
  ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`].join('\n') + '\n'
const stsPath = (d: string) => `mta-sts.${d}/.well-known/mta-sts.txt`
const TLSA = { usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 7) }

let world: World

/** A domain with an MTA-STS TXT record and its policy host. */
function sts(d: string, id = '1'): void {
  world.dns.set(`_mta-sts.${d}`, { TXT: [`v=STSv1; id=${id};`] })
  world.host(`mta-sts.${d}`)
}

function dane(d: string): void {
  world.dns.set(d, { MX: [`10 mx.${d}`], secure: true })
  world.dns.set(`_25._tcp.mx.${d}`, { TLSA: [TLSA], secure: true })
}

before(async () => {
  world = await startWorld({
    zone: {
      '_linksec.txt.test': { TXT: ['v=LINKSEC1; level=4; ttl=86400; sig=required'] },
      '_linksec.malformed.test': { TXT: ['v=LINKSEC1; level=9; ttl=60'] },
      '_linksec.twice.test': { TXT: ['v=LINKSEC1; level=3', 'v=LINKSEC1; level=4'] },
      '_linksec.split.test': { TXT: [['v=LINKSEC1; lev', 'el=2; ttl=600']] },
      'servfail.test': { fault: 'servfail' },
      'insecure-dane.test': { MX: ['10 mx.insecure-dane.test'] },
      '_25._tcp.mx.insecure-dane.test': { TLSA: [TLSA] },
    },
  })
  for (const d of [
    'sts.test',
    'both.test',
    'big.test',
    'slow.test',
    'moved.test',
    'html.test',
    'badcert.test',
    'refresh.test',
  ])
    sts(d)
  world.https.route(stsPath('sts.test'), { body: policy('enforce', ['mx.sts.test', '*.backup.sts.test']) })
  world.https.route(stsPath('both.test'), { body: policy('enforce', ['mx.both.test']) })
  world.https.route(stsPath('big.test'), { fault: 'oversized', bytes: 200_000 })
  world.https.route(stsPath('slow.test'), {
    fault: 'drip',
    dripMs: 200,
    body: policy('enforce', ['mx.slow.test']),
  })
  world.https.route(stsPath('moved.test'), redirect('https://mta-sts.moved.test/elsewhere'))
  world.https.route(stsPath('html.test'), {
    headers: { 'content-type': 'text/html' },
    body: policy('enforce', ['mx.html.test']),
  })
  world.https.route(stsPath('badcert.test'), { body: policy('enforce', ['mx.badcert.test']) })
  world.https.certFault('mta-sts.badcert.test', 'wrong-name')
  world.https.route(stsPath('refresh.test'), { body: policy('enforce', ['mx.refresh.test'], 3600) })
  dane('dane.test')
  dane('both.test')
})

after(() => world.close())

const STATIC = JSON.stringify({
  policies: { 'static.test': { mode: 'enforce', mxs: ['.static.test'], level: 4 } },
})

function resolverFor(extra: IniSections = {}, clock?: { t: number }) {
  const dir = world.configIni({ net: { timeout_ms: 1500 }, ...extra }, { 'linksec.domains.json': STATIC })
  const metrics = createMetrics({ processMetrics: false })
  const rt = createRuntime(loadConfig(dir), {
    log: silentLogger,
    metrics,
    now: clock ? () => clock.t : undefined,
  })
  return { resolver: policyResolverFor(rt), metrics }
}

const src = (p: DomainPolicy, s: string) => p.sources.find((a) => a.source === s)!

test('each source alone', async () => {
  const { resolver } = resolverFor()
  const txt = await resolver.resolve('txt.test')
  assert.deepEqual([txt.level, txt.tlsMode, txt.signatures, txt.decidedBy], [4, 'encrypt', 'required', 'txt'])
  const s = await resolver.resolve('sts.test')
  assert.deepEqual([s.level, s.tlsMode, s.decidedBy], [3, 'secure', 'mta_sts'])
  assert.deepEqual(s.mxPatterns, ['mx.sts.test', '*.backup.sts.test'])
  const d = await resolver.resolve('dane.test')
  assert.deepEqual([d.level, d.tlsMode, d.decidedBy], [3, 'dane-only', 'dane'])
  const st = await resolver.resolve('static.test')
  assert.deepEqual([st.level, st.tlsMode, st.decidedBy], [4, 'secure', 'static'])
  const none = await resolver.resolve('nothing.test')
  assert.deepEqual([none.level, none.tlsMode, none.temporaryFailure], [0, 'none', false])
  const split = await resolver.resolve('split.test')
  assert.equal(split.level, 2, 'a TXT record of several strings is joined')
})

test('sources in conflict: DANE beats MTA-STS', async () => {
  const { resolver } = resolverFor()
  const p = await resolver.resolve('both.test')
  assert.equal(p.tlsMode, 'dane-only')
  assert.equal(src(p, 'mta_sts').outcome, 'found')
  assert.equal(src(p, 'mta_sts').tlsMode, 'secure')
})

test('DANE needs the AD bit', async () => {
  const { resolver } = resolverFor()
  const p = await resolver.resolve('insecure-dane.test')
  assert.equal(p.tlsMode, 'none')
  assert.match(src(p, 'dane').reason, /not DNSSEC-validated/)
})

test('SERVFAIL with nothing cached is a temporary failure', async () => {
  const { resolver } = resolverFor()
  const p = await resolver.resolve('servfail.test')
  assert.equal(p.temporaryFailure, true)
  assert.equal(p.tlsModeUncertain, true)
  assert.equal(src(p, 'dane').outcome, 'error')
})

test('hostile and broken policy hosts are cut off and ignored, with counted reasons', async () => {
  const { resolver, metrics } = resolverFor()
  const cases: [string, RegExp][] = [
    ['big.test', /too_large/i],
    ['slow.test', /timeout/i],
    ['moved.test', /redirect|http_status/i],
    ['html.test', /bad_content_type/],
    ['badcert.test', /tls/i],
    ['malformed.test', /no v=STSv1/],
  ]
  for (const [d, why] of cases) {
    const p = await resolver.resolve(d)
    assert.equal(p.tlsMode, 'none', d)
    assert.equal(src(p, 'mta_sts').outcome, 'none', d)
    assert.match(src(p, 'mta_sts').reason, why, d)
  }
  const m = await metrics.registry.getSingleMetric('linksec_declarations_rejected_total')!.get()
  const reasons = m.values.filter((v) => v.labels.source === 'mta_sts').map((v) => String(v.labels.reason))
  assert.ok(reasons.length >= 5, reasons.join(','))
  assert.equal((await resolver.resolve('malformed.test')).level, 0)
  assert.equal((await resolver.resolve('twice.test')).level, 0, 'two LINKSEC records: neither is trusted')
})

test('private and loopback policy hosts are refused unless allow_private_addresses is set', async () => {
  const { resolver } = resolverFor({ net: { allow_private_addresses: false } })
  const p = await resolver.resolve('sts.test')
  assert.equal(p.tlsMode, 'none')
  assert.match(src(p, 'mta_sts').reason, /private/i)
})

test('a failed refresh within max_age keeps the policy; past max_age it is gone', async () => {
  const clock = { t: Date.now() }
  const { resolver } = resolverFor({}, clock)
  assert.equal((await resolver.resolve('refresh.test')).tlsMode, 'secure')
  world.dns.set('_mta-sts.refresh.test', { TXT: ['v=STSv1; id=2;'] })
  world.https.route(stsPath('refresh.test'), { status: 500, body: 'oops' })
  clock.t += 1800 * 1000
  let p = await resolver.resolve('refresh.test')
  assert.equal(p.tlsMode, 'secure')
  assert.equal(src(p, 'mta_sts').outcome, 'stale')
  world.dns.fault('_mta-sts.refresh.test', 'servfail')
  clock.t += 1000 * 1000
  p = await resolver.resolve('refresh.test')
  assert.equal(p.tlsMode, 'secure')
  assert.equal(p.tlsModeUncertain, false)
  clock.t += 1000 * 1000
  p = await resolver.resolve('refresh.test')
  assert.equal(src(p, 'mta_sts').outcome, 'error')
  assert.equal(p.tlsModeUncertain, true)
})
