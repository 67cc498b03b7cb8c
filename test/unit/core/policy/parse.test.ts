import { test } from 'node:test'
import assert from 'node:assert/strict'
import { normalizeDomain, parseNextHop } from '../../../../core/policy/domain'
import {
  mxMatches,
  normalizeMxPattern,
  parseStsPolicy,
  parseStsTxt,
  MAX_STS_MAX_AGE,
} from '../../../../core/policy/mta-sts-parse'

test('normalizeDomain: lower-cases, drops the trailing dot, refuses non-names', () => {
  assert.equal(normalizeDomain('Example.NET.'), 'example.net')
  for (const bad of [
    '',
    'localhost',
    '192.0.2.1',
    '-a.example',
    'a-.example',
    'a..example',
    'a_b.example',
    'x.123',
    `${'a'.repeat(64)}.example`,
    'a b.example',
  ])
    assert.equal(normalizeDomain(bad), undefined, bad)
  assert.equal(normalizeDomain(`${'a.'.repeat(126)}ab`), undefined) // 254 octets
})

test('parseNextHop: Postfix smtp_tls_policy_maps keys', () => {
  assert.deepEqual(parseNextHop('example.com'), { kind: 'domain', domain: 'example.com' })
  assert.deepEqual(parseNextHop('Example.com:587'), { kind: 'domain', domain: 'example.com' })
  assert.deepEqual(parseNextHop('[mx.example.com]:25'), { kind: 'host', domain: 'mx.example.com', port: 25 })
  assert.deepEqual(parseNextHop('[mx.example.com]'), { kind: 'host', domain: 'mx.example.com' })
  assert.deepEqual(parseNextHop('[192.0.2.1]:25'), { kind: 'address', address: '192.0.2.1' })
  assert.deepEqual(parseNextHop('[ipv6:2001:db8::1]'), { kind: 'address', address: '2001:db8::1' })
  assert.deepEqual(parseNextHop('2001:db8::1'), { kind: 'address', address: '2001:db8::1' })
  for (const bad of ['[mx.example.com', 'a b', '[]:25', 'example.com:port', '[bad_name.example]'])
    assert.deepEqual(parseNextHop(bad), { kind: 'invalid' }, bad)
})

test('parseStsTxt: RFC 8461 §3.1', () => {
  assert.deepEqual(parseStsTxt(['v=STSv1; id=20240101T000000;']), {
    ok: true,
    value: { id: '20240101T000000' },
  })
  assert.deepEqual(parseStsTxt(['v=STSv1;id=abc']), { ok: true, value: { id: 'abc' } })
  assert.deepEqual(parseStsTxt(['v=STSv1; id=abc; ext=x']), { ok: true, value: { id: 'abc' } })
  assert.equal(parseStsTxt(['v=spf1 -all', 'hello']), undefined)
  assert.equal(parseStsTxt(['V=STSv1; id=abc']), undefined, 'v= is case-sensitive')
  assert.deepEqual(parseStsTxt(['v=STSv1; id=a', 'v=STSv1; id=b']), { ok: false, reason: 'multiple_records' })
  assert.deepEqual(parseStsTxt(['v=STSv1; foo=bar']), { ok: false, reason: 'missing_id' })
  assert.deepEqual(parseStsTxt(['v=STSv1; id=has-dash']), { ok: false, reason: 'bad_id' })
  assert.deepEqual(parseStsTxt([`v=STSv1; id=${'a'.repeat(33)}`]), { ok: false, reason: 'bad_id' })
  assert.deepEqual(parseStsTxt(['v=STSv1; id=a b']), { ok: false, reason: 'malformed_field' })
})

test('parseStsPolicy: fields, duplicates, limits', () => {
  const ok = parseStsPolicy(
    'version: STSv1\nmode: enforce\nmx: MX1.example.com\nmx: *.example.net.\nmax_age: 604800\nfuture: x\n',
  )
  assert.deepEqual(ok, {
    ok: true,
    value: { mode: 'enforce', mx: ['mx1.example.com', '*.example.net'], maxAgeSeconds: 604800 },
  })
  const dup = parseStsPolicy(
    'version: STSv1\r\nmode: testing\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 10\r\n',
  )
  assert.equal(dup.ok && dup.value.mode, 'testing', 'first of a duplicated key wins')
  const big = parseStsPolicy('version: STSv1\nmode: none\nmax_age: 99999999999\n')
  assert.deepEqual(big, { ok: false, reason: 'bad_max_age' })
  const capped = parseStsPolicy('version: STSv1\nmode: none\nmax_age: 9999999999\n')
  assert.equal(capped.ok && capped.value.maxAgeSeconds, MAX_STS_MAX_AGE)
  const cases: [string, string][] = [
    ['mode: enforce\nmx: a.example\nmax_age: 1', 'bad_version'],
    ['version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1', 'bad_version'],
    ['version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1', 'bad_mode'],
    ['version: STSv1\nmode: enforce\nmax_age: 1', 'missing_mx'],
    ['version: STSv1\nmode: enforce\nmx: a.example', 'bad_max_age'],
    ['version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1', 'bad_mx_pattern'],
    ['version: STSv1\nmode: enforce\nmx: *\nmax_age: 1', 'bad_mx_pattern'],
    ['<html>hello</html>', 'malformed_line'],
    [
      `version: STSv1\nmode: enforce\n${Array.from({ length: 65 }, (_, i) => `mx: m${i}.example`).join('\n')}\nmax_age: 1`,
      'too_many_mx',
    ],
  ]
  for (const [body, reason] of cases) assert.deepEqual(parseStsPolicy(body), { ok: false, reason }, body)
})

test('mxMatches: one-label wildcard (RFC 8461 §4.1) and the static list .domain form', () => {
  assert.equal(mxMatches('mail.example.com', ['*.example.com']), true)
  assert.equal(mxMatches('MAIL.example.com.', ['*.example.com']), true)
  assert.equal(mxMatches('example.com', ['*.example.com']), false)
  assert.equal(mxMatches('a.b.example.com', ['*.example.com']), false)
  assert.equal(mxMatches('mx.example.com', ['mx.example.com']), true)
  assert.equal(mxMatches('mx2.example.com', ['mx.example.com']), false)
  assert.equal(mxMatches('a.b.example.com', ['.example.com']), true)
  assert.equal(mxMatches('example.com', ['.example.com']), false)
  assert.equal(mxMatches('badexample.com', ['.example.com']), false)
  assert.equal(normalizeMxPattern('*.*.example.com'), undefined)
})
