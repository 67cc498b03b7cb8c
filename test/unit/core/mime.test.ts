import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  decodeQuotedPrintable,
  decodeTransfer,
  parseContentType,
  parseEntity,
  splitMultipart,
  toCrlf,
} from '../../../core/mime'

const b = (s: string) => Buffer.from(s, 'latin1')

test('Content-Type: type lower-cased, quoted parameters, comments, default text/plain', () => {
  const ct = parseContentType(
    'Multipart/Signed; micalg=pgp-sha256; protocol="application/pgp-signature" (pgp); boundary="a;b\\"c"',
  )
  assert.equal(ct.type, 'multipart/signed')
  assert.equal(ct.params.protocol, 'application/pgp-signature')
  assert.equal(ct.params.boundary, 'a;b"c')
  assert.equal(ct.params.micalg, 'pgp-sha256')
  assert.deepEqual(parseContentType(undefined), { type: 'text/plain', params: {} })
})

/** The plain reading of RFC 2045 §5.1 parameters, a character at a time: the oracle for splitParams. */
function referenceParams(value: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  let depth = 0
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!
    if (quoted) {
      cur += c
      if (c === '\\' && i + 1 < value.length) cur += value.charAt(++i)
      else if (c === '"') quoted = false
    } else if (depth > 0) {
      if (c === '(') depth++
      else if (c === ')') depth--
    } else if (c === '"') {
      quoted = true
      cur += c
    } else if (c === '(') depth++
    else if (c === ';') {
      out.push(cur)
      cur = ''
    } else cur += c
  }
  out.push(cur)
  return out
}

test('property: Content-Type parameters split as the character-at-a-time reading does (quotes, escapes, nested comments)', () => {
  const ct = (tokens: string[]) => {
    const want: Record<string, string> = {}
    const parts = referenceParams(tokens.join(''))
    for (const t of parts.slice(1)) {
      const eq = t.indexOf('=')
      if (eq <= 0) continue
      const name = t.slice(0, eq).trim().toLowerCase()
      let v = t.slice(eq + 1).trim()
      if (v.startsWith('"'))
        v = v.slice(1, v.endsWith('"') && v.length > 1 ? -1 : undefined).replace(/\\(.)/g, '$1')
      if (!(name in want)) want[name] = v
    }
    return { type: (parts[0] ?? '').trim().toLowerCase() || 'text/plain', params: want }
  }
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('a', 'B', '=', ';', ' ', '"', '\\', '(', ')', 'x=1', 'text/plain'), {
        maxLength: 30,
      }),
      (tokens) => {
        assert.deepEqual(parseContentType(tokens.join('')), ct(tokens))
      },
    ),
    { numRuns: 2000 },
  )
})

test('entity: folded headers unfolded, body starts after the blank line', () => {
  const e = parseEntity(b('Subject: a\r\n b\r\nX: 1\r\n\r\nbody\r\n'))
  assert.deepEqual(
    e.headers.map((h) => [h.key, h.value]),
    [
      ['subject', 'a b'],
      ['x', '1'],
    ],
  )
  assert.equal(e.body.toString(), 'body\r\n')
  assert.equal(parseEntity(b('\r\nonly body')).body.toString(), 'only body')
  assert.equal(parseEntity(b('X: no body')).body.length, 0)
})

test('multipart: parts are byte-exact, the CRLF before a delimiter belongs to the delimiter', () => {
  const body = b('preamble\r\n--B\r\npart one\r\n\r\n--B  \r\npart two\r\n--B--\r\nepilogue')
  const mp = splitMultipart(body, 'B')
  assert.equal(mp.closed, true)
  assert.deepEqual(
    mp.parts.map((p) => p.toString()),
    ['part one\r\n', 'part two'],
  )
})

test('multipart: a boundary-like string inside a line, or a longer boundary, is not a delimiter', () => {
  const mp = splitMultipart(b('--B\r\nx --B y\r\n--Bextra\r\nz\r\n--B--'), 'B')
  assert.deepEqual(
    mp.parts.map((p) => p.toString()),
    ['x --B y\r\n--Bextra\r\nz'],
  )
  assert.equal(splitMultipart(b('--B\r\nno close\r\n'), 'B').closed, false)
  // A line that starts with the close delimiter but goes on is text too (RFC 2046 §5.1.1).
  const notClosed = splitMultipart(b('--B\r\none\r\n--B--more\r\ntwo\r\n--B--'), 'B')
  assert.deepEqual(
    notClosed.parts.map((p) => p.toString()),
    ['one\r\n--B--more\r\ntwo'],
  )
})

test('toCrlf converts bare LF only', () => {
  assert.equal(toCrlf(b('a\nb\r\nc\n')).toString(), 'a\r\nb\r\nc\r\n')
  const same = b('a\r\nb\r\n')
  assert.equal(toCrlf(same), same)
})

test('quoted-printable and base64 decoding', () => {
  assert.equal(
    decodeQuotedPrintable(b('Gr=C3=BC=C3=9Fe =3D soft=\r\nbreak  \r\nx=ZZ')).toString('utf8'),
    'Grüße = softbreak\r\nx=ZZ',
  )
  assert.equal(decodeTransfer(b('aGVs\r\nbG8='), 'BASE64').toString(), 'hello')
  assert.equal(decodeTransfer(b('as is'), '8bit').toString(), 'as is')
})
