import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LinksecError } from '../../../../core/errors'
import type { DnsAnswer } from '../../../../core/net/types'
import { counterValue, harness, STS_POLICY, type Harness } from './fakes'

const D = 'example.test'
const STS_URL = `https://mta-sts.${D}/.well-known/mta-sts.txt`

function withSts(h: Harness, id = 'one', mode = 'enforce', maxAge = 86400): void {
  h.dns.txt(`_mta-sts.${D}`, [`v=STSv1; id=${id};`], { ttl: 300 })
  h.https.serve(STS_URL, STS_POLICY(mode, ['mx.example.test', '*.backup.example.test'], maxAge))
}

function withDane(h: Harness, opts: { mxAd?: boolean; tlsaAd?: boolean; usage?: number } = {}): void {
  const mx: DnsAnswer = {
    rcode: 'NOERROR',
    authenticated: opts.mxAd ?? true,
    records: [{ type: 'MX', name: D, ttl: 600, priority: 10, exchange: `mx.${D}` }],
  }
  h.dns.set(D, 'MX', mx)
  h.dns.set(`_25._tcp.mx.${D}`, 'TLSA', {
    rcode: 'NOERROR',
    authenticated: opts.tlsaAd ?? true,
    records: [
      {
        type: 'TLSA',
        name: `_25._tcp.mx.${D}`,
        ttl: 600,
        usage: opts.usage ?? 3,
        selector: 1,
        matchingType: 1,
        data: Buffer.alloc(32, 1),
      },
    ],
  })
}

const outcomeOf = (p: { sources: { source: string; outcome: string }[] }, s: string) =>
  p.sources.find((a) => a.source === s)?.outcome

test('nothing published: level 0, no TLS mode, every source says none', async () => {
  const h = harness()
  const p = await h.resolver.resolve(D)
  assert.equal(p.level, 0)
  assert.equal(p.tlsMode, 'none')
  assert.equal(p.decidedBy, 'none')
  assert.equal(p.temporaryFailure, false)
  assert.deepEqual(
    p.sources.map((s) => `${s.source}:${s.outcome}`),
    ['static:none', 'dane:none', 'mta_sts:none', 'txt:none', 'learned:none'],
  )
})

test('TXT alone: level, sig= and encrypt', async () => {
  const h = harness()
  h.dns.txt(`_linksec.${D}`, ['v=spf1 -all', 'v=LINKSEC1; level=4; ttl=86400; sig=required'])
  const p = await h.resolver.resolve(D)
  assert.equal(p.level, 4)
  assert.equal(p.tlsMode, 'encrypt')
  assert.equal(p.signatures, 'required')
  assert.equal(p.decidedBy, 'txt')
  assert.equal(await h.resolver.signaturePolicy(D), 'required')
  assert.equal(
    await counterValue(h.metrics, 'linksec_peer_declarations_total', { source: 'txt', level: '4' }),
    1,
  )
})

test('MTA-STS alone: secure with the policy MX patterns, level 3', async () => {
  const h = harness()
  withSts(h)
  const p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'secure')
  assert.equal(p.level, 3)
  assert.deepEqual(p.mxPatterns, ['mx.example.test', '*.backup.example.test'])
  assert.equal(p.decidedBy, 'mta_sts')
})

test('MTA-STS testing and none are not enforced', async () => {
  for (const mode of ['testing', 'none']) {
    const h = harness()
    withSts(h, 'one', mode)
    const p = await h.resolver.resolve(D)
    assert.equal(p.tlsMode, 'none', mode)
    assert.equal(outcomeOf(p, 'mta_sts'), 'found')
    assert.match(p.sources.find((s) => s.source === 'mta_sts')!.reason, /not enforced/)
  }
})

test('DANE alone: validated MX and TLSA give dane-only', async () => {
  const h = harness()
  withDane(h)
  const p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'dane-only')
  assert.equal(p.level, 3)
  assert.equal(p.decidedBy, 'dane')
})

test('DANE needs validation and a usable TLSA usage', async () => {
  for (const [opts, why] of [
    [{ mxAd: false }, /not DNSSEC-validated/],
    [{ tlsaAd: false }, /no validated, usable TLSA/],
    [{ usage: 1 }, /no validated, usable TLSA/],
  ] as const) {
    const h = harness()
    withDane(h, opts)
    const p = await h.resolver.resolve(D)
    assert.equal(p.tlsMode, 'none', JSON.stringify(opts))
    assert.match(p.sources.find((s) => s.source === 'dane')!.reason, why)
  }
})

test('DANE: SERVFAIL (maybe bogus DNSSEC) is an error, and the TLS mode is uncertain', async () => {
  const h = harness()
  h.dns.set(D, 'MX', { rcode: 'SERVFAIL', authenticated: false, records: [] })
  withSts(h)
  const p = await h.resolver.resolve(D)
  assert.equal(outcomeOf(p, 'dane'), 'error')
  assert.equal(p.tlsMode, 'secure')
  assert.equal(p.tlsModeUncertain, true)
  assert.equal(p.temporaryFailure, true)
})

test('DANE beats MTA-STS when both are published', async () => {
  const h = harness()
  withSts(h)
  withDane(h)
  const p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'dane-only')
  assert.equal(outcomeOf(p, 'mta_sts'), 'found')
})

test('static list: operator facts, and a testing entry never weakens published MTA-STS', async () => {
  const h = harness({
    staticDoc: { policies: { [D]: { mode: 'testing', mxs: ['.example.test'], level: 1 } } },
  })
  let p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'encrypt')
  assert.equal(p.decidedBy, 'static')
  withSts(h)
  h.clock.advance(4000)
  p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'secure')
  assert.equal(p.level, 3)
  assert.equal(p.decidedBy, 'mta_sts')
})

test('sources in conflict: a low TXT level does not lower MTA-STS, a high one raises the level', async () => {
  const h = harness()
  withSts(h)
  h.dns.txt(`_linksec.${D}`, ['v=LINKSEC1; level=1; ttl=600'])
  let p = await h.resolver.resolve(D)
  assert.equal(p.level, 3)
  assert.equal(p.tlsMode, 'secure')
  const h2 = harness()
  withSts(h2)
  h2.dns.txt(`_linksec.${D}`, ['v=LINKSEC1; level=4; ttl=600'])
  p = await h2.resolver.resolve(D)
  assert.equal(p.level, 4)
  assert.equal(p.tlsMode, 'secure')
})

test('MTA-STS: a failed refresh within max_age keeps the policy; past max_age it is gone', async () => {
  const h = harness()
  withSts(h, 'one', 'enforce', 3600)
  assert.equal((await h.resolver.resolve(D)).tlsMode, 'secure')
  // The id changes and the policy host breaks: the cached policy stands.
  h.dns.txt(`_mta-sts.${D}`, ['v=STSv1; id=two;'], { ttl: 300 })
  h.https.pages.set(STS_URL, new LinksecError('LINKSEC_FETCH_TIMEOUT', 'timed out'))
  h.clock.advance(600)
  let p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'secure')
  assert.equal(outcomeOf(p, 'mta_sts'), 'stale')
  assert.match(p.sources.find((s) => s.source === 'mta_sts')!.reason, /fetch_timeout.*kept until/)
  // DNS fails too, still within max_age.
  h.dns.fail(`_mta-sts.${D}`, 'TXT')
  h.clock.advance(600)
  p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'secure')
  assert.equal(p.tlsModeUncertain, false)
  // Past max_age with DNS still failing: nothing valid is cached.
  h.clock.advance(3600)
  p = await h.resolver.resolve(D)
  assert.equal(outcomeOf(p, 'mta_sts'), 'error')
  assert.equal(p.tlsMode, 'none')
  assert.equal(p.tlsModeUncertain, true)
  assert.equal(p.temporaryFailure, true)
})

test('MTA-STS: a vanished TXT record keeps the cached policy until max_age (RFC 8461 §3.3)', async () => {
  const h = harness()
  withSts(h, 'one', 'enforce', 3600)
  await h.resolver.resolve(D)
  h.dns.zone.delete(`_mta-sts.${D}/TXT`)
  h.clock.advance(1000)
  assert.equal((await h.resolver.resolve(D)).tlsMode, 'secure')
  h.clock.advance(3000)
  const p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'none')
  assert.equal(outcomeOf(p, 'mta_sts'), 'none')
})

test('MTA-STS: an unchanged id is not refetched; a new valid policy replaces the old', async () => {
  const h = harness()
  withSts(h)
  await h.resolver.resolve(D)
  h.clock.advance(400)
  await h.resolver.resolve(D)
  assert.equal(h.https.fetched.length, 1)
  h.dns.txt(`_mta-sts.${D}`, ['v=STSv1; id=two;'], { ttl: 300 })
  h.https.serve(STS_URL, STS_POLICY('testing', ['mx.example.test']))
  h.clock.advance(400)
  const p = await h.resolver.resolve(D)
  assert.equal(h.https.fetched.length, 2)
  assert.equal(p.tlsMode, 'none')
})

test('MTA-STS: hostile or broken policies are ignored with a counted reason', async () => {
  const cases: [string, (h: Harness) => void, string][] = [
    [
      '404',
      (h) => h.https.pages.set(STS_URL, { status: 404, headers: { 'content-type': 'text/plain' } }),
      'http_status',
    ],
    [
      'html',
      (h) =>
        h.https.serve(STS_URL, STS_POLICY('enforce', ['mx.example.test']), { 'content-type': 'text/html' }),
      'bad_content_type',
    ],
    [
      'garbage',
      (h) => h.https.serve(STS_URL, 'version: STSv1\nmode: enforce\nmax_age: 60\n'),
      'policy_missing_mx',
    ],
    [
      'oversized',
      (h) => h.https.pages.set(STS_URL, new LinksecError('LINKSEC_FETCH_TOO_LARGE', 'body over 65536 bytes')),
      'fetch_too_large',
    ],
    [
      'private address',
      (h) =>
        h.https.pages.set(STS_URL, new LinksecError('LINKSEC_FETCH_PRIVATE_ADDRESS', 'refused 127.0.0.1')),
      'fetch_private_address',
    ],
  ]
  for (const [name, setup, reason] of cases) {
    const h = harness()
    h.dns.txt(`_mta-sts.${D}`, ['v=STSv1; id=one;'])
    setup(h)
    const p = await h.resolver.resolve(D)
    assert.equal(p.tlsMode, 'none', name)
    assert.equal(outcomeOf(p, 'mta_sts'), 'none', name)
    assert.equal(p.temporaryFailure, false, name)
    assert.equal(
      await counterValue(h.metrics, 'linksec_declarations_rejected_total', { source: 'mta_sts', reason }),
      1,
      name,
    )
  }
})

test('TXT: malformed records are ignored and counted, never trusted', async () => {
  for (const [text, reason] of [
    ['v=LINKSEC1; level=9', 'bad_level'],
    ['v=LINKSEC2; level=3', 'bad_version'],
    ['v=LINKSEC1; level=3; level=4', 'duplicate_tag'],
    ['v=LINKSEC1; level=3; sig=maybe', 'bad_sig'],
  ]) {
    const h = harness()
    h.dns.txt(`_linksec.${D}`, [text!])
    const p = await h.resolver.resolve(D)
    assert.equal(p.level, 0, text)
    assert.equal(outcomeOf(p, 'txt'), 'none')
    assert.equal(
      await counterValue(h.metrics, 'linksec_declarations_rejected_total', {
        source: 'txt',
        reason: reason!,
      }),
      1,
      text,
    )
  }
  const h = harness()
  h.dns.txt(`_linksec.${D}`, ['v=LINKSEC1; level=3', 'v=LINKSEC1; level=4'])
  assert.equal((await h.resolver.resolve(D)).level, 0)
})

test('TXT: a weaker, missing or malformed record does not undo a promise within its ttl', async () => {
  const h = harness()
  h.dns.txt(`_linksec.${D}`, ['v=LINKSEC1; level=3; ttl=1000'], { ttl: 60 })
  assert.equal((await h.resolver.resolve(D)).level, 3)
  h.dns.txt(`_linksec.${D}`, ['v=LINKSEC1; level=1; ttl=1000'], { ttl: 60 })
  h.clock.advance(100)
  let p = await h.resolver.resolve(D)
  assert.equal(p.level, 3)
  assert.match(
    p.sources.find((s) => s.source === 'txt')!.reason,
    /now declares level 1; level 3 declared earlier holds/,
  )
  h.dns.txt(`_linksec.${D}`, ['v=LINKSEC1; level=x'], { ttl: 60 })
  h.clock.advance(100)
  assert.equal((await h.resolver.resolve(D)).level, 3)
  h.dns.fail(`_linksec.${D}`, 'TXT')
  h.clock.advance(100)
  p = await h.resolver.resolve(D)
  assert.equal(p.level, 3)
  assert.equal(p.temporaryFailure, false)
  h.clock.advance(1000)
  p = await h.resolver.resolve(D)
  assert.equal(p.level, 0)
  assert.equal(p.temporaryFailure, true, 'the promise ran out and the lookup fails')
})

test('cache: answers are reused until the earliest refresh; concurrent lookups are deduplicated', async () => {
  const h = harness()
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  h.dns.set(`_linksec.${D}`, 'TXT', async () => {
    await gate
    return {
      rcode: 'NOERROR',
      authenticated: false,
      records: [{ type: 'TXT', name: `_linksec.${D}`, ttl: 120, text: 'v=LINKSEC1; level=2; ttl=3600' }],
    }
  })
  const all = Promise.all(Array.from({ length: 20 }, () => h.resolver.resolve(D)))
  release()
  const results = await all
  assert.ok(results.every((p) => p.level === 2))
  assert.equal(h.dns.count(`_linksec.${D}/TXT`), 1)
  await h.resolver.resolve(D)
  assert.equal(h.dns.count(`_linksec.${D}/TXT`), 1)
  h.clock.advance(121)
  await h.resolver.resolve(D)
  assert.equal(h.dns.count(`_linksec.${D}/TXT`), 2)
})

test('cache: a none answer is kept for negative_ttl, a failure only briefly', async () => {
  const h = harness({ ini: { policy: { negative_ttl: '300' } } })
  await h.resolver.resolve(D)
  h.clock.advance(200)
  await h.resolver.resolve(D)
  assert.equal(h.dns.count(`_linksec.${D}`), 1)
  h.clock.advance(101)
  h.dns.fail(`_linksec.${D}`, 'TXT')
  await h.resolver.resolve(D)
  assert.equal(h.dns.count(`_linksec.${D}`), 2)
  h.clock.advance(31)
  await h.resolver.resolve(D)
  assert.equal(h.dns.count(`_linksec.${D}`), 3)
})

test('disabled sources are not asked', async () => {
  const h = harness({ ini: { policy: { dane: 'false', mta_sts: 'false' } } })
  withSts(h)
  withDane(h)
  const p = await h.resolver.resolve(D)
  assert.equal(p.tlsMode, 'none')
  assert.equal(outcomeOf(p, 'dane'), 'disabled')
  assert.equal(h.dns.count(D), 0)
  assert.equal(h.dns.count(`_mta-sts`), 0)
})

test('bad domain names are refused before any lookup', async () => {
  const h = harness()
  for (const bad of ['', 'localhost', '127.0.0.1', 'a b.example', '_linksec.example.test'])
    await assert.rejects(
      h.resolver.resolve(bad),
      (e: unknown) => e instanceof LinksecError && e.code === 'LINKSEC_BAD_DOMAIN' && !e.temporary,
    )
  assert.equal(h.dns.asked.length, 0)
})

test('learned EHLO declarations count at once and expire with their ttl', async () => {
  const h = harness()
  assert.equal(
    h.resolver.learnFromEhlo(D, ['250-mx.example.test', '250-PIPELINING', '250 LINKSEC 4 ttl=600']),
    'stored',
  )
  let p = await h.resolver.resolve(D)
  assert.equal(p.level, 4)
  assert.equal(p.decidedBy, 'learned')
  assert.equal(
    await counterValue(h.metrics, 'linksec_peer_declarations_total', { source: 'ehlo', level: '4' }),
    1,
  )
  h.clock.advance(601)
  p = await h.resolver.resolve(D)
  assert.equal(p.level, 0)
})

test('learned: a weaker declaration does not replace a stronger one within its ttl', async () => {
  const h = harness()
  h.resolver.learnDeclaration(D, { level: 4, ttlSeconds: 600 }, 'ehlo')
  assert.equal(h.resolver.learnDeclaration(D, { level: 1, ttlSeconds: 6000 }, 'ehlo'), 'kept_stronger')
  assert.equal((await h.resolver.resolve(D)).level, 4)
  assert.equal(h.resolver.learnDeclaration(D, { level: 4, ttlSeconds: 6000 }, 'ehlo'), 'stored')
})

test('learned: malformed EHLO and banner declarations are counted and ignored; banners without ttl are not kept', async () => {
  const h = harness()
  assert.equal(h.resolver.learnFromEhlo(D, ['250-mx', '250 LINKSEC 9 ttl=600']), 'rejected')
  assert.equal(h.resolver.learnFromEhlo(D, ['250-mx', '250 LINKSEC 3']), 'rejected')
  assert.equal(h.resolver.learnFromEhlo(D, ['250 PIPELINING']), 'absent')
  assert.equal(h.resolver.learnFromBanner(D, 'mx.example.test ESMTP LINKSEC=x'), 'rejected')
  assert.equal(h.resolver.learnFromBanner(D, 'mx.example.test ESMTP LINKSEC=3'), 'not_kept')
  assert.equal(h.resolver.learnFromBanner(D, 'mx.example.test ESMTP LINKSEC=3;ttl=60'), 'stored')
  assert.equal(h.resolver.learnDeclaration('not a name', { level: 3, ttlSeconds: 60 }, 'ehlo'), 'not_kept')
  assert.equal(
    await counterValue(h.metrics, 'linksec_declarations_rejected_total', {
      source: 'ehlo',
      reason: 'bad_level',
    }),
    1,
  )
  assert.equal(
    await counterValue(h.metrics, 'linksec_declarations_rejected_total', {
      source: 'ehlo',
      reason: 'bad_ttl',
    }),
    1,
  )
  assert.equal(
    await counterValue(h.metrics, 'linksec_declarations_rejected_total', {
      source: 'banner',
      reason: 'bad_level',
    }),
    1,
  )
  assert.equal((await h.resolver.resolve(D)).level, 3)
})

test('learned: the store is bounded by [policy] learned_max', () => {
  const h = harness({ ini: { policy: { learned_max: '3' } } })
  for (let i = 0; i < 10; i++)
    h.resolver.learnDeclaration(`d${i}.example`, { level: 2, ttlSeconds: 60 }, 'ehlo')
  assert.equal(h.learned.size, 3)
  assert.equal(h.learned.get('d9.example')?.level, 2)
  assert.equal(h.learned.get('d0.example'), undefined)
})

test('a throwing DNS client costs an error answer, never a crash', async () => {
  const h = harness()
  h.dns.set(`_linksec.${D}`, 'TXT', () => Promise.reject(new TypeError('boom')))
  const p = await h.resolver.resolve(D)
  assert.equal(outcomeOf(p, 'txt'), 'error')
  assert.equal(p.temporaryFailure, true)
})
