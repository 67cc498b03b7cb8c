import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { test } from 'node:test'
import { fromAddress, parseAddress } from '../../../../core/keys/address'
import { openpgpkeyName, wkdHash, wkdUrls, zbase32 } from '../../../../core/keys/names'
import { decodeHeaderBlock } from '../../../../core/mime'
import { needTools, which } from '../../../helpers/tools'

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

test('WKD hash of UTF-8 local parts: the UTF-8 bytes, only A-Z lower-cased (vectors from gpg-wks-client)', () => {
  // gpg-wks-client --print-wkd-hash (GnuPG 2.2): Ä stays upper-case, ö/ü are hashed as UTF-8.
  assert.equal(wkdHash('Jörg.Müller'), 'wk41hqsfaf5zrtijq3z3446khpc33133')
  assert.equal(wkdHash('ÄBC'), 'ud9bxcn7eq8b9bfbmjthn5bwe8ifr8y1')
  // A From field's bytes decoded once, as UTF-8 (core/mime.ts), give the same hash.
  const header = decodeHeaderBlock(Buffer.from('From: Jörg <Jörg.Müller@example.org>\r\n', 'utf8'))
  const a = fromAddress(header.slice('From: '.length).trim())!
  assert.equal(wkdHash(a.local), 'wk41hqsfaf5zrtijq3z3446khpc33133')
})

const WKS_CLIENT = '/usr/lib/gnupg/gpg-wks-client'

test('WKD hash agrees with gpg-wks-client on hostile and Unicode local parts', (t) => {
  // Debian installs it outside PATH (/usr/lib/gnupg); needTools fails in CI when it is missing.
  const tool = fs.existsSync(WKS_CLIENT) ? WKS_CLIENT : which('gpg-wks-client')
  if (!tool && !needTools(t, { 'gpg-wks-client': 'gpg-wks-client' })) return
  const locals = ['Joe.Doe', 'Jörg.Müller', 'ÄBC', '山田', 'ZAZ-q_1+tag', 'İstanbul', 'ǅemal', 'ß']
  const out = execFileSync(tool!, ['--print-wkd-hash', ...locals.map((l) => `${l}@example.org`)], {
    encoding: 'utf8',
  })
  const hashes = out
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[0])
  assert.deepEqual(
    locals.map((l) => wkdHash(l)),
    hashes,
  )
})
