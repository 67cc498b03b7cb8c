/**
 * The signing engine with openpgp.js keys: what it makes is PGP/MIME that
 * linksec's own verifier passes, 8-bit and binary parts decode to their
 * original octets, encrypted mail is signed outside, mail it signed before
 * is left alone, protected headers are copied.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, test } from 'node:test'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../../../core/config'
import { keyStoreFor } from '../../../../core/keys'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime, type Runtime } from '../../../../core/runtime'
import { signMessage, signingKeyFrom, type SigningKey } from '../../../../core/sign'
import { applySigned } from '../../../../core/sign/apply'
import { verifyMessage } from '../../../../core/verify'
import { findSignedForm } from '../../../../core/verify/extract'
import {
  decodeTransfer,
  headerValue,
  parseContentType,
  parseEntity,
  splitMultipart,
} from '../../../../core/mime'

let dir: string
let rt: Runtime
const keys: Record<string, SigningKey> = {}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-sign-'))
  rt = createRuntime(parseConfig({ main: { authserv_id: 'mx.test' }, keys: { methods: 'local' } }, dir), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
  })
  for (const [name, opts] of [
    ['ed', { type: 'ecc', curve: 'ed25519Legacy' }],
    ['rsa', { type: 'rsa', rsaBits: 2048 }],
  ] as const) {
    const address = `${name}@example.org`
    const { privateKey, publicKey } = await openpgp.generateKey({
      ...opts,
      userIDs: [{ email: address }],
      format: 'object',
    })
    await keyStoreFor(rt).add(Buffer.from(publicKey.write()))
    keys[name] = await signingKeyFrom(privateKey, address)
  }
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

const head = (from: string, extra = '') =>
  `From: Test <${from}>\r\nTo: bob@example.net\r\nSubject: hi\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n${extra}`

async function verdict(msg: Buffer) {
  return verifyMessage(rt, msg, { signaturePolicy: async () => 'optional' })
}

function signed(msg: Buffer, key: SigningKey, protectedHeaders = false): Buffer {
  const r = signMessage(msg, key, { protectedHeaders })
  assert.equal(r.kind, 'signed', r.kind === 'signed' ? '' : r.reason)
  return applySigned(msg, r)
}

/** Part 1 of the multipart/signed. */
function signedPart(msg: Buffer): Buffer {
  const form = findSignedForm(parseEntity(msg))
  assert.equal(form.kind, 'signed')
  return form.kind === 'signed' ? form.data : Buffer.alloc(0)
}

describe('signMessage', () => {
  for (const k of ['ed', 'rsa']) {
    test(`${k}: a plain message passes linksec's verifier`, async () => {
      const msg = Buffer.from(`${head(`${k}@example.org`)}Content-Type: text/plain\r\n\r\nhello\r\n`)
      const out = signed(msg, keys[k]!)
      const d = await verdict(out)
      assert.equal(d.result, 'pass', d.facts.reason)
      assert.match(
        out.toString('latin1'),
        /Content-Type: multipart\/signed; micalg=pgp-sha256; protocol="application\/pgp-signature"/,
      )
      assert.match(out.toString('latin1'), /application\/pgp-signature; name="OpenPGP_signature.asc"/)
    })
  }

  test('8-bit text becomes quoted-printable, no trailing blank, decodes to the same octets', async () => {
    const text = Buffer.from('Grüße  \r\nFrom here on\r\nbare\rCR and tab\t\r\n=end', 'utf8')
    const msg = Buffer.concat([
      Buffer.from(
        `${head('ed@example.org')}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n`,
      ),
      text,
    ])
    const out = signed(msg, keys.ed!)
    assert.equal((await verdict(out)).result, 'pass')
    const part = parseEntity(signedPart(out))
    assert.equal(headerValue(part.headers, 'content-transfer-encoding'), 'quoted-printable')
    assert.ok(!/[ \t]\r\n/.test(part.body.toString('latin1')), 'no blank at a line end')
    assert.ok(part.body.every((c) => c < 0x80))
    assert.deepEqual(decodeTransfer(part.body, 'quoted-printable'), text)
  })

  test('a binary attachment becomes base64 and decodes byte-exact', async () => {
    // Every octet but lone CR and LF: without BINARYMIME a line break is CRLF on the wire, whatever the part holds.
    const bin = Buffer.from(
      Array.from({ length: 3000 }, (_, i) => (i * 37) & 0xff).map((v) => (v === 10 || v === 13 ? 0 : v)),
    )
    const b = 'mixed1'
    const msg = Buffer.concat([
      Buffer.from(
        `${head('ed@example.org')}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${b}"\r\n\r\npreamble\r\n--${b}\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--${b}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n`,
      ),
      bin,
      Buffer.from(`\r\n--${b}--\r\n`),
    ])
    const out = signed(msg, keys.ed!)
    assert.equal((await verdict(out)).result, 'pass')
    const inner = parseEntity(signedPart(out))
    const parts = splitMultipart(
      inner.body,
      parseContentType(headerValue(inner.headers, 'content-type')).params.boundary!,
    )
    assert.equal(parts.parts.length, 2)
    const att = parseEntity(parts.parts[1]!)
    assert.equal(headerValue(att.headers, 'content-transfer-encoding'), 'base64')
    assert.deepEqual(decodeTransfer(att.body, 'base64'), bin)
    assert.equal(parseEntity(parts.parts[0]!).body.toString(), 'see file')
  })

  test('bare LF input is signed in CRLF form', async () => {
    const msg = Buffer.from(`From: ed@example.org\nSubject: lf\n\nline one\nline two\n`)
    const out = signed(msg, keys.ed!)
    assert.equal((await verdict(out)).result, 'pass')
  })

  test('multipart/encrypted is signed outside, the ciphertext untouched', async () => {
    const enc = `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="e1"\r\n\r\n--e1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--e1\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA1234\r\n-----END PGP MESSAGE-----\r\n--e1--\r\n`
    const msg = Buffer.from(`${head('ed@example.org')}MIME-Version: 1.0\r\n${enc}`)
    const out = signed(msg, keys.ed!, true)
    assert.equal((await verdict(out)).result, 'pass')
    assert.equal(signedPart(out).toString('latin1'), enc)
  })

  test('mail this key signed before is left alone; another signature is signed outside', async () => {
    const msg = Buffer.from(`${head('ed@example.org')}Content-Type: text/plain\r\n\r\nhello\r\n`)
    const once = signed(msg, keys.ed!)
    assert.equal(signMessage(once, keys.ed!).kind, 'already_signed')
    const other = signMessage(once, keys.rsa!)
    assert.equal(other.kind, 'signed')
  })

  test('protected headers: copied into the signed part with hp="clear"', async () => {
    const msg = Buffer.from(
      `${head('ed@example.org', 'Cc: c@example.net\r\n')}Content-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n`,
    )
    const out = signed(msg, keys.ed!, true)
    assert.equal((await verdict(out)).result, 'pass')
    const part = parseEntity(signedPart(out))
    for (const h of ['from', 'to', 'cc', 'subject', 'date', 'message-id'])
      assert.ok(headerValue(part.headers, h), h)
    assert.equal(parseContentType(headerValue(part.headers, 'content-type')).params.hp, 'clear')
  })

  test('a broken multipart that needs re-encoding is reported, not signed', () => {
    const msg = Buffer.from(
      `${head('ed@example.org')}Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nGr\xfc\xdfe\r\n`,
      'latin1',
    )
    assert.equal(signMessage(msg, keys.ed!).kind, 'broken')
  })

  test('top-level Content-* fields move into the signed part', async () => {
    const msg = Buffer.from(
      `${head('ed@example.org')}MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Language: de\r\n\r\nhallo\r\n`,
    )
    const out = signed(msg, keys.ed!)
    const top = parseEntity(out)
    assert.equal(headerValue(top.headers, 'content-language'), undefined)
    assert.equal(top.headers.filter((h) => h.key === 'mime-version').length, 1)
    assert.equal(headerValue(parseEntity(signedPart(out)).headers, 'content-language'), 'de')
  })
})
