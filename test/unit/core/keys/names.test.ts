import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fromAddress, parseAddress } from '../../../../core/keys/address'
import { openpgpkeyName, wkdHash, wkdUrls, zbase32 } from '../../../../core/keys/names'

test('WKD hash: the draft vector (only ASCII letters lower-cased, SHA-1, z-base-32)', () => {
  assert.equal(wkdHash('Joe.Doe'), 'iy9q119eutrkn8s1mk4r39qejnbu3n5q')
  assert.equal(wkdHash('joe.doe'), wkdHash('JOE.DOE'))
  assert.equal(wkdHash('joe.doe').length, 32)
})

test('z-base-32 of short inputs (RFC 6189 alphabet, MSB first, no padding)', () => {
  assert.equal(zbase32(Buffer.from([])), '')
  assert.equal(zbase32(Buffer.from([0])), 'yy')
  assert.equal(zbase32(Buffer.from([0xff])), '9h')
  assert.equal(zbase32(Buffer.from([0xf0, 0xbf, 0xc7])), '6n9hq')
})

test('WKD URLs: advanced on openpgpkey.<domain>, direct on the domain, l= keeps the local part', () => {
  const u = wkdUrls(parseAddress('Joe.Doe@Example.ORG')!)
  assert.equal(u.advancedHost, 'openpgpkey.example.org')
  assert.equal(
    u.advanced,
    'https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
  )
  assert.equal(
    u.direct,
    'https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
  )
  assert.match(wkdUrls(parseAddress('a+b&c@x.org')!).direct, /\?l=a%2Bb%26c$/)
})

test('OPENPGPKEY owner name: RFC 7929 vector, case not folded', () => {
  assert.equal(
    openpgpkeyName(parseAddress('hugh@example.com')!),
    'c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com',
  )
  assert.notEqual(
    openpgpkeyName(parseAddress('Hugh@example.com')!),
    openpgpkeyName(parseAddress('hugh@example.com')!),
  )
})

test('From: exactly one mailbox, display names and comments allowed', () => {
  const cases: [string, string | undefined][] = [
    ['alice@example.org', 'alice@example.org'],
    ['Alice <alice@Example.ORG>', 'alice@example.org'],
    ['"Doe, Alice" <alice@example.org>', 'alice@example.org'],
    ['alice@example.org (Alice)', 'alice@example.org'],
    ['=?utf-8?q?Al=C3=AFce?= <alice@example.org>', 'alice@example.org'],
    ['"quoted local"@example.org', 'quoted local@example.org'],
    ['alice@example.org, bob@example.org', undefined],
    ['Friends: alice@example.org;', undefined],
    ['<>', undefined],
    ['alice', undefined],
    ['alice@localhost', undefined],
    ['Alice alice@example.org', undefined],
  ]
  for (const [v, want] of cases) assert.equal(fromAddress(v)?.address, want, v)
})
