import { test } from 'node:test'
import assert from 'node:assert/strict'
import { combine } from '../../../../core/policy/combine'
import type { SourceAnswer } from '../../../../core/policy/types'
import {
  formatReply,
  parseRequest,
  policyReply,
  postfixMatchPattern,
  tlsrptAttributes,
} from '../../../../milter/socketmap/tls-policy'

const found = (a: Partial<SourceAnswer> & Pick<SourceAnswer, 'source'>): SourceAnswer => ({
  outcome: 'found',
  reason: 'r',
  ...a,
})
const reply = (answers: SourceAnswer[]) => formatReply(policyReply(combine('example.test', answers)))

test('replies per kind of domain (socketmap_table(5), postconf(5) smtp_tls_policy_maps)', () => {
  assert.equal(
    reply([found({ source: 'dane', level: 3, tlsMode: 'dane-only', mxPatterns: ['mx.example.test'] })]),
    'OK dane-only',
  )
  assert.equal(
    reply([
      found({
        source: 'mta_sts',
        level: 3,
        tlsMode: 'secure',
        mxPatterns: ['mx.example.test', '*.backup.example.test'],
      }),
    ]),
    'OK secure match=mx.example.test:.backup.example.test servername=hostname',
  )
  assert.equal(
    reply([found({ source: 'static', level: 3, tlsMode: 'secure', mxPatterns: ['.example.test'] })]),
    'OK secure match=.example.test servername=hostname',
  )
  assert.equal(reply([found({ source: 'txt', level: 2, tlsMode: 'encrypt' })]), 'OK encrypt')
  assert.equal(reply([found({ source: 'txt', level: 0 })]), 'NOTFOUND ')
  assert.equal(reply([{ source: 'txt', outcome: 'none', reason: 'no record' }]), 'NOTFOUND ')
})

test('TEMP only when a failed source could have made the mode stricter', () => {
  const dnsDown: SourceAnswer = {
    source: 'dane',
    outcome: 'error',
    reason: 'DNS lookup of example.test MX failed (timeout)',
  }
  assert.match(
    reply([dnsDown]),
    /^TEMP policy lookup for example.test failed \(dane: DNS lookup .*timeout\)\)$/,
  )
  const txtDown: SourceAnswer = { source: 'txt', outcome: 'error', reason: 'x' }
  assert.match(
    reply([
      found({ source: 'mta_sts', level: 3, tlsMode: 'secure', mxPatterns: ['mx.example.test'] }),
      txtDown,
    ]),
    /^OK secure/,
  )
  assert.match(reply([txtDown]), /^TEMP /)
  const weird: SourceAnswer = { source: 'dane', outcome: 'error', reason: 'bad\r\nline\x00' }
  assert.doesNotMatch(reply([weird]), /[\r\n\x00]/)
})

test('request parsing', () => {
  assert.deepEqual(parseRequest(Buffer.from('linksec example.com')), { name: 'linksec', key: 'example.com' })
  assert.deepEqual(parseRequest(Buffer.from('linksec [mx.example.com]:25')), {
    name: 'linksec',
    key: '[mx.example.com]:25',
  })
  for (const bad of ['linksec', ' example.com', 'linksec ', 'linksec a b', 'linksec a\x00'])
    assert.throws(() => parseRequest(Buffer.from(bad)), /socketmap request/, JSON.stringify(bad))
})

test('MTA-STS wildcards become Postfix .domain patterns', () => {
  assert.equal(postfixMatchPattern('*.example.com'), '.example.com')
  assert.equal(postfixMatchPattern('.example.com'), '.example.com')
  assert.equal(postfixMatchPattern('mx.example.com'), 'mx.example.com')
})

test('[socketmap] tlsrpt=true: Postfix 3.10 attributes for an MTA-STS policy only; off by default', () => {
  const sts = combine('example.test', [
    found({
      source: 'mta_sts',
      level: 3,
      tlsMode: 'secure',
      mxPatterns: ['mx.example.test'],
      policyStrings: ['version: STSv1', 'mode: enforce', 'mx: mx.example.test', 'max_age: 600'],
    }),
  ])
  assert.equal(formatReply(policyReply(sts)), 'OK secure match=mx.example.test servername=hostname')
  assert.equal(
    formatReply(policyReply(sts, { tlsrpt: true })),
    'OK secure match=mx.example.test servername=hostname policy_type=sts policy_domain=example.test' +
      ' policy_ttl=600 mx_host_pattern=mx.example.test { policy_string = version: STSv1 }' +
      ' { policy_string = mode: enforce } { policy_string = mx: mx.example.test } { policy_string = max_age: 600 }',
  )
  assert.equal(
    tlsrptAttributes(combine('example.test', [found({ source: 'txt', level: 2, tlsMode: 'encrypt' })])),
    '',
  )
  const braces = combine('example.test', [
    found({
      source: 'mta_sts',
      level: 3,
      tlsMode: 'secure',
      mxPatterns: ['mx.example.test'],
      policyStrings: ['x: {}'],
    }),
  ])
  assert.doesNotMatch(tlsrptAttributes(braces), /[{}]/, 'a brace cannot be quoted: the line is left out')
})
