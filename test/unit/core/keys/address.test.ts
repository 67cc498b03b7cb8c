/**
 * The one mailbox parser (core/keys/address.ts): a table of From values
 * that are and are not exactly one mailbox, and properties: whatever
 * surrounds a mailbox, fromAddress never returns an address that is not the
 * single addr-spec of the value, and a second mailbox anywhere makes it
 * undefined.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { fromAddress, parseAddress } from '../../../../core/keys/address'

test('From values: exactly one mailbox or nothing', () => {
  const cases: [string, string | undefined][] = [
    ['alice@example.org', 'alice@example.org'],
    ['  alice@example.org  ', 'alice@example.org'],
    ['Alice <alice@example.org>', 'alice@example.org'],
    ['<alice@example.org>', 'alice@example.org'],
    ['Alice Q. Doe <alice@example.org>', 'alice@example.org'],
    ['"Doe, Alice <x@y.org>" <alice@example.org>', 'alice@example.org'],
    ['(a (nested) comment) Alice <alice@example.org> (after)', 'alice@example.org'],
    ['alice@example.org.', 'alice@example.org'],
    ['<@route.example,@other.example:alice@example.org>', 'alice@example.org'],
    ['Ålice Ünïcode <älice@example.org>', 'älice@example.org'],
    ['"eve@attacker.test"@example.org', 'eve@attacker.test@example.org'],
    ['<alice@sender.test> <eve@attacker.test>', undefined],
    ['alice@example.org <eve@attacker.test>', undefined],
    ['Alice <alice@example.org> eve@attacker.test', undefined],
    ['<eve@attacker.test>alice@example.org', undefined],
    ['alice@example.org eve@attacker.test', undefined],
    ['a@example.org, b@example.org', undefined],
    ['group: a@example.org;', undefined],
    ['group:;', undefined],
    ['undisclosed-recipients:;', undefined],
    ['', undefined],
    ['<>', undefined],
    ['@example.org', undefined],
    ['alice@', undefined],
    ['alice@[192.0.2.1]', undefined],
    ['alice@example', undefined],
    ['al..ice@example.org', undefined],
    ['.alice@example.org', undefined],
    ['alice@example..org', undefined],
    ['alice\x00@example.org', undefined],
    ['Al\x1bice <alice@example.org>', undefined],
    ['Alice\r <alice@example.org>', undefined],
    ['Alice (unclosed <alice@example.org>', undefined],
    ['"unclosed <alice@example.org>', undefined],
    ['Alice <<alice@example.org>>', undefined],
    ['Alice <alice@example.org', undefined],
    ['Alice \\ <alice@example.org>', undefined],
    [`${'x'.repeat(65)}@example.org`, undefined],
    [`A${' a'.repeat(2000)} <alice@example.org>`, undefined],
  ]
  for (const [v, want] of cases) assert.equal(fromAddress(v)?.address, want, JSON.stringify(v))
})

test('parseAddress takes a bare addr-spec only', () => {
  assert.equal(parseAddress('Joe.Doe@Example.ORG')?.address, 'Joe.Doe@example.org')
  assert.equal(parseAddress('Alice <alice@example.org>'), undefined)
  assert.equal(parseAddress('a@b.example, c@d.example'), undefined)
  assert.equal(parseAddress('../../etc@example.org'), undefined)
  assert.equal(parseAddress('"../x"@example.org')?.local, '../x')
})

const label = fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/)
const addr = fc
  .tuple(fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,10}[a-z0-9]$/), label, label)
  .filter(([l]) => !l.includes('..'))
  .map(([l, a, b]) => `${l}@${a}.${b}`)
/** Anything a display name or a comment might hold. */
const noise = fc.string({ maxLength: 12 })

/**
 * Noise that cannot hide an addr-spec: a quote or parenthesis around one makes
 * it a quoted display name or a comment, and `"<a@x.y>"<b@x.y>` is one mailbox
 * (RFC 5322 §3.4), so those characters would make the property below false.
 */
const openNoise = noise.map((s) => s.replace(/["()\\]/g, ''))

test('property: a value with two addr-specs is never one mailbox', () => {
  fc.assert(
    fc.property(addr, addr, openNoise, openNoise, openNoise, (a, b, x, y, z) => {
      for (const v of [
        `<${a}> <${b}>`,
        `${x}<${a}>${y}<${b}>${z}`,
        `${a} <${b}>`,
        `<${a}>${y}${b}`,
        `${a}, ${b}`,
        `${x}: ${a}, ${b};`,
      ])
        assert.equal(fromAddress(v), undefined, JSON.stringify(v))
    }),
  )
})

test('an addr-spec inside a quoted display name or a comment is not an address', () => {
  assert.equal(fromAddress('"<aa@a.a>"<a0@a.a>')?.address, 'a0@a.a')
  assert.equal(fromAddress('(<aa@a.a>) <a0@a.a>')?.address, 'a0@a.a')
})

test('property: when a value parses, its address is the one addr-spec in it', () => {
  fc.assert(
    fc.property(addr, noise, noise, (a, x, y) => {
      for (const v of [
        `${x}<${a}>${y}`,
        `${x} <${a}>`,
        `"${x.replace(/["\\]/g, '')}" <${a}>`,
        `(${x}) ${a}`,
      ]) {
        const got = fromAddress(v)
        if (got) assert.equal(got.address.toLowerCase(), a.toLowerCase(), JSON.stringify(v))
      }
      assert.equal(fromAddress(`Name <${a}>`)?.address, a)
    }),
  )
})
