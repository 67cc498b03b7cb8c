import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  findEhloDeclaration,
  formatEhloKeyword,
  formatTxtRecord,
  MAX_TTL_SECONDS,
  messageRequirement,
  parseBannerToken,
  parseEhloKeyword,
  parseRequirementHeader,
  parseTxtRecord,
  performedLevel,
  pickTxtRecord,
  txtRecordName,
  type Level,
} from '../../../core/levels'

const level = fc.integer({ min: 0, max: 4 }) as fc.Arbitrary<Level>
const ttl = fc.integer({ min: 0, max: MAX_TTL_SECONDS })

test('EHLO keyword: format and parse round trip', () => {
  fc.assert(
    fc.property(level, ttl, (l, t) => {
      assert.deepEqual(parseEhloKeyword(formatEhloKeyword({ level: l, ttlSeconds: t })), {
        ok: true,
        value: { level: l, ttlSeconds: t },
      })
    }),
  )
})

test('EHLO keyword: other keywords, bad levels and ttls', () => {
  assert.equal(parseEhloKeyword('PIPELINING'), undefined)
  assert.deepEqual(parseEhloKeyword('linksec 3 TTL=60'), { ok: true, value: { level: 3, ttlSeconds: 60 } })
  assert.deepEqual(parseEhloKeyword('LINKSEC 5 ttl=60'), { ok: false, reason: 'bad_level' })
  assert.deepEqual(parseEhloKeyword('LINKSEC'), { ok: false, reason: 'bad_level' })
  assert.deepEqual(parseEhloKeyword('LINKSEC 3'), { ok: false, reason: 'bad_ttl' })
  assert.deepEqual(parseEhloKeyword('LINKSEC 3 ttl=-1'), { ok: false, reason: 'bad_ttl' })
  assert.deepEqual(parseEhloKeyword('LINKSEC 3 ttl=99999999999'), { ok: false, reason: 'bad_ttl' })
  assert.deepEqual(
    parseEhloKeyword('LINKSEC 3 ttl=9999999999'),
    { ok: true, value: { level: 3, ttlSeconds: MAX_TTL_SECONDS } },
    'clamped to a week',
  )
  assert.deepEqual(findEhloDeclaration(['250-mx.example', '250-SIZE 1000', '250 LINKSEC 2 ttl=5']), {
    ok: true,
    value: { level: 2, ttlSeconds: 5 },
  })
  assert.equal(findEhloDeclaration(['250-mx.example', '250 SIZE 1000']), undefined)
})

test('banner token: LINKSEC=N anywhere, ttl optional (0 = this session only)', () => {
  assert.deepEqual(parseBannerToken('mx.example.net ESMTP Postfix LINKSEC=3'), {
    ok: true,
    value: { level: 3, ttlSeconds: 0 },
  })
  assert.deepEqual(parseBannerToken('mx.example.net ESMTP LINKSEC=4;ttl=600 ready'), {
    ok: true,
    value: { level: 4, ttlSeconds: 600 },
  })
  assert.deepEqual(parseBannerToken('mx.example.net ESMTP LINKSEC=x'), { ok: false, reason: 'bad_level' })
  assert.equal(parseBannerToken('mx.example.net ESMTP XLINKSEC=3'), undefined)
  assert.equal(parseBannerToken('mx.example.net ESMTP'), undefined)
})

test('TXT record: format and parse round trip; the record name', () => {
  fc.assert(
    fc.property(level, ttl, fc.constantFrom<'required' | 'optional'>('required', 'optional'), (l, t, s) => {
      const d = { level: l, ttlSeconds: t, signatures: s }
      assert.deepEqual(parseTxtRecord(formatTxtRecord(d)), { ok: true, value: d })
    }),
  )
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9A-F]{40}$/), (ca) => {
      const d = { level: 3 as const, ttlSeconds: 60, signatures: 'optional' as const, ca }
      assert.deepEqual(parseTxtRecord(formatTxtRecord(d)), { ok: true, value: d })
    }),
  )
  assert.equal(txtRecordName('Example.NET.'), '_linksec.example.net')
})

test('TXT record: defaults, unknown tags, and what is refused', () => {
  assert.deepEqual(parseTxtRecord('v=LINKSEC1; level=2'), {
    ok: true,
    value: { level: 2, ttlSeconds: 3600, signatures: 'optional' },
  })
  assert.deepEqual(parseTxtRecord('v=LINKSEC1;level=2;future=yes;'), {
    ok: true,
    value: { level: 2, ttlSeconds: 3600, signatures: 'optional' },
  })
  const refused: [string, string][] = [
    ['level=2; v=LINKSEC1', 'not_first_v'],
    ['v=LINKSEC2; level=2', 'bad_version'],
    ['v=LINKSEC1; level=', 'bad_level'],
    ['v=LINKSEC1; level=2; ttl=soon', 'bad_ttl'],
    ['v=LINKSEC1; level=2; sig=always', 'bad_sig'],
    ['v=LINKSEC1; level=2; level=3', 'duplicate_tag'],
    ['v=LINKSEC1; level 2', 'malformed_tag'],
    ['v=LINKSEC1; level=2; ca=E64953EF', 'bad_ca'],
    ['v=LINKSEC1; level=2; ca=' + 'G'.repeat(40), 'bad_ca'],
  ]
  const fpr = 'e64953efe22fd5376937172e625cc9ad8d7b48b1'
  assert.deepEqual(parseTxtRecord(`v=LINKSEC1; level=2; ca=${fpr}`), {
    ok: true,
    value: { level: 2, ttlSeconds: 3600, signatures: 'optional', ca: fpr.toUpperCase() },
  })
  for (const [text, reason] of refused) assert.deepEqual(parseTxtRecord(text), { ok: false, reason }, text)
  assert.equal(pickTxtRecord(['v=spf1 -all']), undefined)
  assert.deepEqual(pickTxtRecord(['v=LINKSEC1; level=1', 'v=LINKSEC1; level=2']), {
    ok: false,
    reason: 'multiple_records',
  })
})

test('property: declaration parsers never throw on arbitrary text', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      parseTxtRecord(s)
      parseEhloKeyword(s)
      parseBannerToken(s)
      parseRequirementHeader(s)
    }),
  )
})

test('performedLevel: never more than the promises kept, never more than configured', () => {
  // [configured, mailboxesTlsOnly, enforceNoDowngrade, enforcePeerLevel] -> performed
  const table: [Level, boolean, boolean, boolean, Level][] = [
    [4, false, true, true, 1],
    [4, true, false, true, 2],
    [4, true, true, false, 3],
    [4, true, true, true, 4],
    [2, true, true, true, 2],
    [0, true, true, true, 0],
    [3, false, false, false, 1],
  ]
  for (const [configuredLevel, mailboxesTlsOnly, enforceNoDowngrade, enforcePeerLevel, want] of table)
    assert.equal(
      performedLevel({ configuredLevel, mailboxesTlsOnly, enforceNoDowngrade, enforcePeerLevel }),
      want,
    )
})

test('messageRequirement: header levels, REQUIRETLS, TLS-Required: No', () => {
  const req = (h: string[], requiretls = false, tlsRequired: string[] = []) =>
    messageRequirement({
      requiretlsParam: requiretls,
      requirementHeaders: h,
      tlsRequiredHeaders: tlsRequired,
    })
  assert.deepEqual(req([]), {
    level: 0,
    requireTls: false,
    verifiedCertificate: false,
    tlsOptional: false,
    source: 'none',
  })
  assert.equal(req(['2', '3 (strict)']).level, 3)
  assert.equal(req(['banana']).level, 4, 'a malformed tag is read as the strictest level')
  assert.deepEqual(req(['1'], true, ['No']), {
    level: 3,
    requireTls: true,
    verifiedCertificate: true,
    tlsOptional: false,
    source: 'requiretls',
  })
  assert.equal(req([], false, ['No']).tlsOptional, true)
  assert.equal(req(['4']).verifiedCertificate, true)
})
