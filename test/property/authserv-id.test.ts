/**
 * Our authserv-id in an incoming Authentication-Results field is found
 * however it is written (RFC 8601 §2.2): after any CFWS (white space,
 * folding, nested comments with quoted-pairs), as a token or a
 * quoted-string, in any case, with or without a trailing dot. Another id —
 * ours with a label added, or ours only inside a comment — is never taken
 * for ours.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { authservIdOf, forgedAuthResults } from '../../core/inbound'

const OURS = 'mx.linksec.test'

/** A comment: ctext, quoted-pairs (also of parens) and nested comments. */
const comment: fc.Arbitrary<string> = fc.letrec((tie) => ({
  comment: fc
    .array(
      fc.oneof(
        { depthSize: 'small', maxDepth: 3 },
        { weight: 4, arbitrary: fc.stringMatching(/^[a-z0-9 .;=@"<>]{0,6}$/) },
        { weight: 1, arbitrary: fc.constantFrom('\\(', '\\)', '\\\\') },
        { weight: 1, arbitrary: tie('comment') as fc.Arbitrary<string> },
      ),
      { maxLength: 4 },
    )
    .map((parts) => `(${parts.join('')})`),
})).comment

const fws = fc.constantFrom('', ' ', '  ', '\t', '\r\n ', '\r\n\t')
const cfws = fc.array(fc.tuple(fws, comment, fws), { maxLength: 3 }).map((xs) => xs.flat().join(''))
const casing = (s: string) =>
  fc
    .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((up) => Array.from(s, (c, i) => (up[i] ? c.toUpperCase() : c)).join(''))
const written = fc.tuple(casing(OURS), fc.boolean(), fc.boolean()).map(([id, dot, quoted]) => {
  const v = dot ? `${id}.` : id
  return quoted ? `"${v}"` : v
})
const rest = fc.constantFrom(
  '; x-openpgp=pass',
  ';x-openpgp=pass',
  ' 1; dkim=pass',
  '; none',
  ' (c); spf=pass',
)

test('property: our id after any CFWS, in any case, quoted or with a trailing dot, is ours', () => {
  fc.assert(
    fc.property(cfws, written, rest, (pre, id, tail) => {
      const v = `${pre}${id}${tail}`
      assert.deepEqual(forgedAuthResults(OURS, [v]), [1], JSON.stringify(v))
      assert.deepEqual(forgedAuthResults(`${OURS}.`, [v]), [1], JSON.stringify(v))
    }),
  )
})

test('property: another id is never ours, even with ours inside a comment', () => {
  const other = fc.constantFrom(`${OURS}.evil`, `evil.${OURS}`, `${OURS}x`, 'other.example', `x${OURS}`)
  fc.assert(
    fc.property(cfws, other, rest, (pre, id, tail) => {
      const v = `${pre}${id}${tail} (${OURS})`
      assert.deepEqual(forgedAuthResults(OURS, [v]), [], JSON.stringify(v))
    }),
  )
})

test('the instances: nested comment, trailing dot, quoted, unreadable', () => {
  const values = [
    `(a(b)c) ${OURS}; x-openpgp=pass`,
    `${OURS}.; x-openpgp=pass`,
    `"MX.LINKSEC.TEST"; dkim=pass`,
    `(x\\) y) ${OURS}; spf=pass`,
    `other.example; spf=pass (${OURS})`,
    `(unclosed comment ${OURS}; x-openpgp=pass`,
    `${OURS}.evil; spf=pass`,
  ]
  assert.deepEqual(forgedAuthResults(OURS, values), [1, 2, 3, 4, 6])
  assert.equal(authservIdOf('(a(b)c) mx.example.;'), 'mx.example.')
  assert.equal(authservIdOf('(a(b)c'), undefined)
})
