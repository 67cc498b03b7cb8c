/**
 * "Enforcement never accepts a hop weaker than the tag" (STYLE, tests): for
 * any requirement, link facts and peer policy, a delivery decision for an
 * enforced tag implies TLS, a declared level >= N and, for N = 4 or
 * REQUIRETLS, a verified certificate.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { messageRequirement, type Level } from '../../core/levels'
import { decideHop, declaredLevel, routeFor, type LinkFacts, type PeerPolicy } from '../../core/enforce'

const level = fc.integer({ min: 0, max: 4 }) as fc.Arbitrary<Level>
const requirement = fc
  .record({
    requiretlsParam: fc.boolean(),
    requirementHeaders: fc.array(fc.oneof(fc.constantFrom('1', '2', '3', '4', ' 3 (x)', 'bogus')), {
      maxLength: 2,
    }),
    tlsRequiredHeaders: fc.array(fc.constantFrom('No', 'yes'), { maxLength: 1 }),
  })
  .map(messageRequirement)
const facts: fc.Arbitrary<LinkFacts> = fc.record({
  hop: fc.constant('mx.test'),
  tls: fc.boolean(),
  offersStartTls: fc.boolean(),
  tlsError: fc.option(fc.string(), { nil: undefined }),
  certVerified: fc.boolean(),
  certError: fc.option(fc.string(), { nil: undefined }),
  peerEhloDeclaration: fc.option(level, { nil: undefined }),
  offersRequireTls: fc.boolean(),
  mxMatchesPolicy: fc.option(fc.boolean(), { nil: undefined }),
})
const policy: fc.Arbitrary<PeerPolicy | undefined> = fc.option(
  fc.record({
    domain: fc.constant('d.test'),
    level: fc.option(level, { nil: undefined }),
    source: fc.constant('txt'),
    tlsRequired: fc.boolean(),
    certificateRequired: fc.boolean(),
  }),
  { nil: undefined },
)
const duties = fc.record({ noDowngrade: fc.boolean(), peerLevel: fc.boolean() })

it('never delivers an enforced tag over a hop weaker than the tag', () => {
  fc.assert(
    fc.property(requirement, facts, policy, duties, (req, f, p, d) => {
      const v = decideHop(req, f, p, d)
      if (v.action !== 'deliver' || req.tlsOptional) return
      const enforced = req.source === 'requiretls' || (req.level > 0 && d.noDowngrade)
      if (p?.tlsRequired) assert.ok(f.tls, 'a policy requiring TLS never gets plaintext')
      if (p?.certificateRequired) assert.ok(f.certVerified && f.mxMatchesPolicy !== false)
      if (!enforced) return
      assert.ok(f.tls, 'enforced tag over plaintext')
      if (req.verifiedCertificate) assert.ok(f.certVerified, 'unverified certificate for N=4/REQUIRETLS')
      const declared = declaredLevel(f, p).level ?? 0
      if (req.source === 'requiretls') assert.ok(f.offersRequireTls || declared >= 3)
      if (d.peerLevel && !(req.source === 'requiretls' && req.level <= 3)) assert.ok(declared >= req.level)
      if (v.passRequireTls) assert.ok(f.offersRequireTls && req.source === 'requiretls')
    }),
    { numRuns: 5000 },
  )
})

it('refusals always carry 5.7.10 (bounce) or 4.7.10 (retry) and name the hop', () => {
  fc.assert(
    fc.property(requirement, facts, policy, duties, (req, f, p, d) => {
      const v = decideHop(req, f, p, d)
      if (v.action === 'deliver') return
      assert.equal(v.enhanced, v.action === 'bounce' ? '5.7.10' : '4.7.10')
      assert.ok(v.text.includes(f.hop))
    }),
  )
})

it('every enforced tag gets a strict Postfix route', () => {
  fc.assert(
    fc.property(requirement, duties, (req, d) => {
      const r = routeFor(req, d)
      const enforced = !req.tlsOptional && (req.source === 'requiretls' || (req.level > 0 && d.noDowngrade))
      assert.equal(r !== undefined, enforced)
      if (r && req.verifiedCertificate) assert.equal(r, 'secure')
    }),
  )
})
