/**
 * The one sanitiser for what linksec writes (core/verdict.ts): for any input,
 * a header value has no control or display-spoofing character, every line
 * break is a fold, no line passes 998 characters, lines pass 78 only where
 * the text has no white space to break at, and unfolding gives back the
 * cleaned text; reply and reason texts are one clean line, capped.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  capText,
  MAX_HEADER_VALUE,
  MAX_REPLY_TEXT,
  reject,
  rewriteHeaderValue,
  safeHeaderValue,
  safeReplyLine,
  safeText,
  tempfail,
} from '../../core/verdict'

const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'g')
const hostileChar = fc.constantFrom(
  '\x00',
  '\x07',
  '\x1b',
  '\r',
  '\n',
  '\t',
  ' ',
  '\x7f',
  '\x85',
  '\u202e',
  '\u2028',
  'é',
  '日',
  '"',
  'a',
  '%',
)
const hostile = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.array(hostileChar, { maxLength: 300 }).map((a) => a.join('')),
  fc
    .tuple(fc.string({ maxLength: 20 }), fc.integer({ min: 1000, max: 70_000 }))
    .map(([s, n]) => s.repeat(Math.ceil(n / Math.max(1, s.length))).slice(0, n)),
)

test('property: header values are clean, folded, bounded, and unfold to the cleaned text', () => {
  fc.assert(
    fc.property(hostile, fc.integer({ min: 0, max: 30 }), (v, nameLength) => {
      const out = safeHeaderValue(v, nameLength)
      const lines = out.split('\n')
      lines.forEach((l, i) => {
        assert.doesNotMatch(l, UNSAFE)
        if (i > 0) assert.match(l, /^[ \t]/, 'a continuation line starts with white space')
        const width = l.length + (i === 0 ? nameLength + 2 : 0)
        assert.ok(width <= 998, `line of ${width}`)
        if (width > 78)
          assert.doesNotMatch(
            l.slice(1, 78 - (i === 0 ? nameLength + 2 : 0)),
            / /,
            'a space was there to break at',
          )
      })
      assert.ok(out.replace(/\n/g, '').length <= MAX_HEADER_VALUE + lines.length)
      // Unfolding restores the cleaned value, unless a word too long for 998 columns was cut.
      if (!/[\r\n\t]/.test(v) && !out.includes('\n\t'))
        assert.equal(out.replace(/\n(?=[ \t])/g, ''), capText(v, MAX_HEADER_VALUE).replace(UNSAFE_ALL, ' '))
    }),
  )
})

/** Values near the written form (folds, long lines, a stray CR, LF or control) hit both paths. */
const nearlyWritten = fc
  .array(
    fc.oneof(
      fc.string({ maxLength: 90 }),
      fc.constantFrom('\n ', '\n\t', '\n', '\r\n ', '\r', '\x1b', '\u202e', ' ', '; ', 'x'.repeat(80)),
    ),
    { maxLength: 12 },
  )
  .map((a) => a.join(''))

test('property: the fast path gives exactly what the rewrite gives', () => {
  fc.assert(
    fc.property(fc.oneof(hostile, nearlyWritten), fc.integer({ min: 0, max: 30 }), (v, nameLength) => {
      assert.equal(safeHeaderValue(v, nameLength), rewriteHeaderValue(v, nameLength))
    }),
    { numRuns: 2000 },
  )
  // Our own folded Authentication-Results value is kept as it is (the fast path's case).
  const ar = 'mx.example.net; x-openpgp=pass\n header.from=alice@example.org'
  assert.equal(safeHeaderValue(ar, 22), ar)
})

test('property: reasons and reply texts are one clean line, capped', () => {
  fc.assert(
    fc.property(hostile, (v) => {
      const t = safeText(v)
      assert.doesNotMatch(t, UNSAFE)
      assert.ok(t.length <= 200)
      const r = reject(550, '5.7.1', v, 'x').text!
      assert.doesNotMatch(r, UNSAFE)
      assert.ok(r.length <= MAX_REPLY_TEXT)
      assert.doesNotMatch(tempfail(451, '4.7.5', v, 'x').text!, UNSAFE)
      assert.match(safeReplyLine(v), /^[\x20-\x7e]*$/)
    }),
  )
})

test('the instances: ESC, BEL, lone CR, NUL, 60 KB, header injection', () => {
  assert.equal(
    safeText('Eve\x1b[2J\x07\x00 <eve@attacker.test>\rX-Injected: 1'),
    'Eve [2J <eve@attacker.test> X-Injected: 1',
  )
  assert.equal(safeText('x'.repeat(60_000)).length, 200)
  assert.equal(safeHeaderValue('a\nX-Injected: 1'), 'a X-Injected: 1')
  assert.equal(safeHeaderValue('a;\r\n\tb'), 'a;\n\tb')
  const ar = `mx.example.net; x-openpgp=fail reason="${'word '.repeat(40).trim()}" header.from=alice@example.org`
  const folded = safeHeaderValue(ar, 'Authentication-Results'.length)
  assert.ok(
    folded.split('\n').every((l, i) => l.length + (i === 0 ? 24 : 0) <= 78),
    folded,
  )
  assert.equal(folded.replace(/\n/g, ''), ar)
})
