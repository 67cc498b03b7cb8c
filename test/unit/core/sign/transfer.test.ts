/** The transfer encodings round-trip every octet and leave nothing a relay would change. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { decodeQuotedPrintable, decodeTransfer } from '../../../../core/mime'
import { encodeBase64, encodeQuotedPrintable, needsEncoding } from '../../../../core/sign/transfer'

const safeLines = (b: Buffer) => b.toString('latin1').split('\r\n')

test('quoted-printable: decodes to the input, 7-bit, lines <= 76, no trailing blank, no leading "From "', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 600 }),
      fc.constantFrom('', ' ', '\t', 'From x', '\r\n', '='),
      (bytes, tail) => {
        const data = Buffer.concat([Buffer.from(bytes), Buffer.from(tail, 'latin1')])
        const qp = encodeQuotedPrintable(data)
        assert.deepEqual(decodeQuotedPrintable(qp), data)
        assert.ok(!needsEncoding(qp), 'the encoding itself is safe')
        for (const l of safeLines(qp)) assert.ok(l.length <= 76, l)
      },
    ),
    { numRuns: 300 },
  )
})

test('base64: decodes to the input, lines of 76', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
      const b = encodeBase64(Buffer.from(bytes))
      assert.deepEqual(decodeTransfer(b, 'base64'), Buffer.from(bytes))
      assert.ok(!needsEncoding(b))
    }),
  )
})

test('needsEncoding: what a relay would change', () => {
  for (const s of ['ok\r\n', 'two\r\nlines', ''])
    assert.equal(needsEncoding(Buffer.from(s)), false, JSON.stringify(s))
  for (const s of [
    'blank \r\n',
    'tab\t',
    'bare\nLF',
    'bare\rCR',
    'ü',
    'x\r\nFrom me',
    'From me',
    'a'.repeat(999),
  ])
    assert.equal(needsEncoding(Buffer.from(s, 'latin1')), true, JSON.stringify(s.slice(0, 20)))
})
