import { test } from 'node:test'
import * as assert from 'node:assert/strict'
import * as crypto from 'node:crypto'
import { dkimKeyPair, dkimSign, relaxedBody, relaxedHeader, splitMessage } from '../../../bench/lib/dkim-sign'
import { messageParts } from '../../../bench/lib/milter-load'
import { parseExports } from '../../../bench/lib/peers'
import { dataPayload } from '../../../bench/lib/smtp-client'
import { formatIni } from '../../../bench/lib/linksec-serve'
import { metricSum } from '../../../bench/memory'

test('relaxed header canonicalization (RFC 6376 §3.4.2 example)', () => {
  assert.equal(relaxedHeader('SUBJect', ' AbC  \r\n\tdef '), 'subject:AbC def')
})

test('relaxed body canonicalization (RFC 6376 §3.4.4 example)', () => {
  assert.equal(relaxedBody(' C \r\nD \t E\r\n\r\n\r\n'), ' C\r\nD E\r\n')
  assert.equal(relaxedBody('\n\n'), '')
})

test('dkimSign signs what a verifier recomputes from the signed message', () => {
  const { privateKeyPem, txt } = dkimKeyPair()
  const message = 'From: a@example.org\nTo: b@example.net\nSubject: hi\n\nbody  line \n\n'
  const signed = dkimSign(message, { domain: 'example.org', selector: 's', privateKeyPem })
  const { headers, body } = splitMessage(signed)
  const sig = headers[0]!
  assert.equal(sig.name, 'DKIM-Signature')
  const tags = Object.fromEntries(
    sig.value
      .replace(/\s+/g, '')
      .split(';')
      .filter(Boolean)
      .map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]),
  )
  assert.equal(tags.bh, crypto.createHash('sha256').update(relaxedBody(body)).digest('base64'))
  const signedHeaders = String(tags.h)
    .split(':')
    .map((n) => headers.find((h) => h.name.toLowerCase() === n)!)
    .map((h) => relaxedHeader(h.name, h.value) + '\r\n')
  const unsignedSig = relaxedHeader(sig.name, sig.value.replace(/b=[^;]*$/, 'b='))
  const publicKey = crypto.createPublicKey({
    key: Buffer.from(txt.split('p=')[1]!, 'base64'),
    format: 'der',
    type: 'spki',
  })
  const data = Buffer.from(signedHeaders.join('') + unsignedSig)
  assert.ok(crypto.verify('sha256', data, publicKey, Buffer.from(tags.b!, 'base64')))
  assert.ok(
    !crypto.verify(
      'sha256',
      Buffer.concat([data, Buffer.from('x')]),
      publicKey,
      Buffer.from(tags.b!, 'base64'),
    ),
  )
})

test('dataPayload makes CRLF lines, dot-stuffs and terminates', () => {
  assert.equal(dataPayload('a\n.b\nc\n'), 'a\r\n..b\r\nc\r\n.\r\n')
  assert.equal(dataPayload('x\r\n'), 'x\r\n.\r\n')
})

test('messageParts unfolds continuation lines into their header and keeps a CRLF body', () => {
  const parts = messageParts('A: 1\nB: 2\n  more\n\nline1\nline2\n')
  assert.deepEqual(parts.headers, [
    ['A', '1'],
    ['B', '2\n  more'],
  ])
  assert.equal(parts.body.toString(), 'line1\r\nline2\r\n')
})

test('parseExports reads the shell export lines of the peer scripts only', () => {
  const vars = parseExports("noise\nexport PF_DIR='/tmp/pf.1'\nexport PF_PORT='10025'\necho x\n")
  assert.deepEqual(vars, { PF_DIR: '/tmp/pf.1', PF_PORT: '10025' })
})

test('metricSum adds every label set of one metric and ignores its look-alikes', () => {
  const text = [
    '# HELP linksec_milter_sessions x',
    'linksec_milter_sessions 3',
    'linksec_milter_sessions_max 9',
    'linksec_key_lookups_total{method="wkd",outcome="none"} 2',
    'linksec_key_lookups_total{method="local",outcome="found"} 5',
  ].join('\n')
  assert.equal(metricSum(text, 'linksec_milter_sessions'), 3)
  assert.equal(metricSum(text, 'linksec_key_lookups_total'), 7)
  assert.ok(Number.isNaN(metricSum(text, 'linksec_absent')))
})

test('formatIni writes sections and keys in order', () => {
  assert.equal(formatIni({ a: { x: 1, y: 'z' }, b: { on: true } }), '[a]\nx=1\ny=z\n\n[b]\non=true\n')
})
