import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { messageRequirement, type Requirement } from '../../../core/levels'
import {
  decideHop,
  declaredLevel,
  routeFor,
  formatRouteHeader,
  parseRouteHeader,
  countTagged,
  enforcementOf,
  peerPolicyOf,
  type LinkFacts,
  type PeerPolicy,
} from '../../../core/enforce'
import { mxMatches } from '../../../core/policy'
import { createRuntime } from '../../../core/runtime'
import { parseConfig } from '../../../core/config'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'

const tagged = (n: string, extra: Partial<{ requiretls: boolean; tlsNo: boolean }> = {}): Requirement =>
  messageRequirement({
    requiretlsParam: extra.requiretls ?? false,
    requirementHeaders: n ? [n] : [],
    tlsRequiredHeaders: extra.tlsNo ? ['No'] : [],
  })
const untagged = tagged('')

const plain: LinkFacts = {
  hop: 'mx.plain.test [127.0.0.1]:25',
  tls: false,
  offersStartTls: false,
  certVerified: false,
  offersRequireTls: false,
}
const tlsNoDecl: LinkFacts = { ...plain, hop: 'mx.tls.test', tls: true, offersStartTls: true }
const tlsSelfSigned: LinkFacts = {
  ...tlsNoDecl,
  peerEhloDeclaration: 4,
  certError: 'self-signed certificate',
}
const level4: LinkFacts = {
  ...tlsNoDecl,
  hop: 'mx.l4.test',
  certVerified: true,
  peerEhloDeclaration: 4,
  offersRequireTls: true,
}
const handshakeFailed: LinkFacts = { ...plain, offersStartTls: true, tlsError: 'wrong version number' }

describe('decideHop', () => {
  const cases: Array<[string, Requirement, LinkFacts, PeerPolicy | undefined, string, string?]> = [
    ['untagged over plaintext', untagged, plain, undefined, 'deliver'],
    ['untagged over TLS', untagged, tlsNoDecl, undefined, 'deliver'],
    [
      'untagged, policy requires TLS, no STARTTLS',
      untagged,
      plain,
      { domain: 'p.test', tlsRequired: true, certificateRequired: false },
      'bounce',
      'no_starttls',
    ],
    [
      'untagged, MTA-STS enforce, cert bad',
      untagged,
      tlsSelfSigned,
      { domain: 'p.test', tlsRequired: true, certificateRequired: true },
      'retry',
      'cert_unverified',
    ],
    [
      'untagged, MTA-STS enforce, MX not listed',
      untagged,
      level4,
      { domain: 'p.test', tlsRequired: true, certificateRequired: true },
      'deliver',
    ],
    ['level 1 plaintext', tagged('1'), plain, undefined, 'bounce', 'no_starttls'],
    ['level 1 handshake failed', tagged('1'), handshakeFailed, undefined, 'retry', 'tls_failed'],
    ['level 1 TLS, no declaration', tagged('1'), tlsNoDecl, undefined, 'bounce', 'peer_level_unknown'],
    [
      'level 1 TLS, DNS says 1',
      tagged('1'),
      tlsNoDecl,
      { domain: 'x.test', level: 1, source: 'txt', tlsRequired: false, certificateRequired: false },
      'deliver',
    ],
    [
      'level 3 TLS, DNS says 2',
      tagged('3'),
      tlsNoDecl,
      { domain: 'x.test', level: 2, source: 'txt', tlsRequired: false, certificateRequired: false },
      'bounce',
      'peer_level_low',
    ],
    ['level 3 self-signed, EHLO 4', tagged('3'), tlsSelfSigned, undefined, 'deliver'],
    ['level 4 self-signed, EHLO 4', tagged('4'), tlsSelfSigned, undefined, 'retry', 'cert_unverified'],
    ['level 4 verified, EHLO 4', tagged('4'), level4, undefined, 'deliver'],
    [
      'level 4 verified, EHLO 3',
      tagged('4'),
      { ...level4, peerEhloDeclaration: 3 },
      undefined,
      'bounce',
      'peer_level_low',
    ],
    ['REQUIRETLS to level-4 REQUIRETLS hop', tagged('', { requiretls: true }), level4, undefined, 'deliver'],
    [
      'REQUIRETLS to hop without it or a level',
      tagged('', { requiretls: true }),
      { ...tlsNoDecl, certVerified: true },
      undefined,
      'bounce',
      'no_requiretls',
    ],
    ['REQUIRETLS, plaintext', tagged('', { requiretls: true }), plain, undefined, 'bounce', 'no_starttls'],
    [
      'REQUIRETLS + level 4 tag, hop advertises REQUIRETLS only',
      tagged('4', { requiretls: true }),
      { ...level4, peerEhloDeclaration: undefined },
      undefined,
      'bounce',
      'peer_level_unknown',
    ],
    [
      'TLS-Required: No, tagged 4, plaintext',
      tagged('4', { tlsNo: true }),
      plain,
      { domain: 'p.test', tlsRequired: true, certificateRequired: true },
      'deliver',
    ],
    [
      'TLS-Required: No, self-signed',
      tagged('', { tlsNo: true }),
      tlsSelfSigned,
      { domain: 'p.test', tlsRequired: true, certificateRequired: true },
      'deliver',
    ],
  ]
  for (const [name, req, facts, policy, action, reason] of cases) {
    it(name, () => {
      const v = decideHop(req, facts, policy)
      assert.equal(v.action, action)
      if (reason) assert.equal(v.reason, reason)
      if (v.action !== 'deliver') {
        assert.equal(v.enhanced, v.action === 'bounce' ? '5.7.10' : '4.7.10')
        assert.ok(v.text.includes(facts.hop), `names the hop: ${v.text}`)
      }
    })
  }

  it('names the reason and the levels in the text', () => {
    const v = decideHop(tagged('3'), tlsNoDecl, {
      domain: 'x.test',
      level: 2,
      source: 'txt',
      tlsRequired: false,
      certificateRequired: false,
    })
    assert.equal(v.action, 'bounce')
    assert.match(
      v.action === 'bounce' ? v.text : '',
      /Link-Security-Required: 3.*level 2 \(txt\), below the required level 3/,
    )
  })

  it('passes REQUIRETLS on only to a hop that advertises it', () => {
    const r = tagged('', { requiretls: true })
    const a = decideHop(r, level4, undefined)
    assert.ok(a.action === 'deliver' && a.passRequireTls)
    const b = decideHop(r, { ...level4, offersRequireTls: false }, undefined)
    assert.ok(b.action === 'deliver' && !b.passRequireTls)
    const c = decideHop(tagged('4'), level4, undefined)
    assert.ok(c.action === 'deliver' && !c.passRequireTls)
  })

  it('a level-3 server (peer_level off) checks TLS but not levels', () => {
    const enforcement = { noDowngrade: true, peerLevel: false }
    assert.equal(
      decideHop(tagged('4'), { ...tlsNoDecl, certVerified: true }, undefined, enforcement).action,
      'deliver',
    )
    assert.equal(decideHop(tagged('4'), plain, undefined, enforcement).action, 'bounce')
    assert.equal(decideHop(tagged('4'), tlsSelfSigned, undefined, enforcement).action, 'retry')
  })

  it('enforcement switched off still keeps REQUIRETLS and policy rules', () => {
    const off = { noDowngrade: false, peerLevel: false }
    assert.equal(decideHop(tagged('4'), plain, undefined, off).action, 'deliver')
    assert.equal(decideHop(tagged('', { requiretls: true }), plain, undefined, off).action, 'bounce')
  })

  it('EHLO beats the resolver', () => {
    const p: PeerPolicy = {
      domain: 'x.test',
      level: 4,
      source: 'txt',
      tlsRequired: false,
      certificateRequired: false,
    }
    assert.deepEqual(declaredLevel({ ...tlsNoDecl, peerEhloDeclaration: 2 }, p), { level: 2, source: 'EHLO' })
    assert.deepEqual(declaredLevel(tlsNoDecl, p), { level: 4, source: 'txt' })
    assert.deepEqual(declaredLevel(tlsNoDecl, undefined), { source: 'none' })
  })
})

describe('routeFor', () => {
  const all = { noDowngrade: true, peerLevel: true }
  it('maps levels to Postfix transports', () => {
    assert.equal(routeFor(untagged, all), undefined)
    assert.equal(routeFor(tagged('1'), all), 'encrypt')
    assert.equal(routeFor(tagged('3'), all), 'encrypt')
    assert.equal(routeFor(tagged('4'), all), 'secure')
    assert.equal(routeFor(tagged('', { requiretls: true }), all), 'secure')
    assert.equal(routeFor(tagged('4', { tlsNo: true }), all), undefined)
    assert.equal(routeFor(tagged('4'), { noDowngrade: false, peerLevel: false }), undefined)
  })
  it('round-trips the header', () => {
    assert.equal(formatRouteHeader('secure', tagged('4')), 'secure; level=4')
    assert.equal(formatRouteHeader('secure', tagged('', { requiretls: true })), 'secure; level=requiretls')
    assert.equal(parseRouteHeader('secure; level=4'), 'secure')
    assert.equal(parseRouteHeader(' Encrypt; level=1'), 'encrypt')
    assert.equal(parseRouteHeader('plaintext'), undefined)
  })
})

describe('countTagged', () => {
  it('counts tagged messages by level and outcome, never untagged ones', async () => {
    const metrics = createMetrics({ processMetrics: false })
    const rt = createRuntime(parseConfig({}, '/tmp'), { log: silentLogger, metrics })
    countTagged(rt, tagged('4'), 'bounced')
    countTagged(rt, tagged('', { requiretls: true }), 'delivered_tls')
    countTagged(rt, untagged, 'delivered_tls')
    const text = await metrics.registry.metrics()
    assert.match(text, /linksec_tagged_messages_total\{level="4",outcome="bounced"\} 1/)
    assert.match(text, /linksec_tagged_messages_total\{level="requiretls",outcome="delivered_tls"\} 1/)
    assert.doesNotMatch(text, /level="0"/)
  })
  it('reads the enforcement from config', () => {
    assert.deepEqual(enforcementOf(parseConfig({}, '/tmp')), { noDowngrade: true, peerLevel: true })
    assert.deepEqual(enforcementOf(parseConfig({ enforce: { enabled: 'false' } }, '/tmp')), {
      noDowngrade: false,
      peerLevel: false,
    })
  })
})

describe('uncertain policies', () => {
  it('a refusal resting on a policy whose lookup failed is a retry', () => {
    const p: PeerPolicy = {
      domain: 'x.test',
      level: 1,
      source: 'txt',
      tlsRequired: true,
      certificateRequired: false,
      uncertain: true,
    }
    const v = decideHop(tagged('3'), tlsNoDecl, p)
    assert.equal(v.action, 'retry')
    assert.equal(v.reason, 'peer_level_low')
    // ...but this session's EHLO is a fact, not a lookup.
    assert.equal(decideHop(tagged('3'), { ...tlsNoDecl, peerEhloDeclaration: 1 }, p).action, 'bounce')
  })
})

describe('peerPolicyOf / mxMatches', () => {
  const base = {
    domain: 'd.test',
    mxPatterns: ['*.d.test'],
    signatures: 'unknown' as const,
    decidedBy: 'mta_sts' as const,
    temporaryFailure: false,
    tlsModeUncertain: false,
  }
  it('maps the policy engine answer', () => {
    const p = peerPolicyOf({
      ...base,
      level: 3,
      tlsMode: 'secure',
      sources: [
        { source: 'mta_sts', outcome: 'found', reason: 'enforce', level: 3, tlsMode: 'secure' },
        { source: 'txt', outcome: 'none', reason: 'no record' },
      ],
    })
    assert.deepEqual(
      { level: p.level, source: p.source, tls: p.tlsRequired, cert: p.certificateRequired },
      { level: 3, source: 'mta_sts', tls: true, cert: true },
    )
  })
  it('nothing found means no known level', () => {
    const p = peerPolicyOf({
      ...base,
      level: 0,
      tlsMode: 'none',
      mxPatterns: [],
      sources: [{ source: 'txt', outcome: 'none', reason: '' }],
    })
    assert.equal(p.level, undefined)
    assert.equal(p.tlsRequired, false)
  })
  it('matches MX patterns the MTA-STS and Postfix way', () => {
    assert.equal(mxMatches('mx1.d.test', ['*.d.test']), true)
    assert.equal(mxMatches('a.mx1.d.test', ['*.d.test']), false)
    assert.equal(mxMatches('a.mx1.d.test', ['.d.test']), true)
    assert.equal(mxMatches('d.test', ['.d.test']), false)
    assert.equal(mxMatches('MX.D.TEST.', ['mx.d.test']), true)
    assert.equal(mxMatches('mx.d.test', []), undefined)
  })
})
