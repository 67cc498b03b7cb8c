/**
 * The signing engine (pure: message and key in, edits out). It turns a
 * message into RFC 3156 PGP/MIME:
 *
 *   Content-Type: multipart/signed; micalg=pgp-sha256;
 *     protocol="application/pgp-signature"; boundary="…"
 *   part 1: the original entity (its Content-* fields and body), 7-bit safe
 *   part 2: application/pgp-signature; name="OpenPGP_signature.asc"
 *
 * multipart/encrypted is signed outside (sign after encrypt); a message
 * already signed at the top by the same key is left alone. With protected
 * headers, From, To, Cc, Subject, Date and Message-ID are copied into part 1
 * and its Content-Type says hp="clear" (RFC 9788 §2).
 */
import * as crypto from 'node:crypto'
import type { HeaderEdit } from '../verdict'
import { findSignedForm } from '../verify/extract'
import { parseEntity, rawFields, splitEntity, toCrlf, type RawField } from '../mime'
import { verifyNative } from '../verify/native'
import { PacketError, readSignatures } from '../verify/packets'
import { BrokenMimeError, fieldsText, fieldValue, makeSafe } from './entity'
import { detachedSignature, type SigningKey } from './signature'

export { signingKeyFrom, type SigningKey } from './signature'
export { BrokenMimeError } from './entity'

export interface SignOptions {
  /** Copy the protected header fields into the signed part (RFC 9788 hp="clear"). */
  protectedHeaders?: boolean
  /** The hp= value of the protected part: "clear" (signed only), "cipher" when it is then encrypted (RFC 9788 §2). */
  hp?: 'clear' | 'cipher'
  /** Signature creation time (default now). */
  date?: Date
  /** Fixed boundary (tests); default random. */
  boundary?: string
}

export type SignResult =
  | {
      kind: 'signed'
      /** Deletes of the old MIME fields at the top, then the new ones appended. */
      headers: HeaderEdit[]
      /** The new body (everything after the header block). */
      body: Buffer
    }
  | { kind: 'already_signed'; reason: string }
  | { kind: 'broken'; reason: string }

/** RFC 9788 §2.1: the fields a signed-only message protects. */
const PROTECTED = ['from', 'to', 'cc', 'subject', 'date', 'message-id']

const PREAMBLE = 'This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n'

export function signMessage(raw: Buffer, key: SigningKey, opts: SignOptions = {}): SignResult {
  const msg = toCrlf(raw)
  const { head, body } = splitEntity(msg)
  return signParsed(msg, rawFields(head), body, key, opts)
}

/** signMessage on a message already split (CRLF, its raw header fields and its body). */
export function signParsed(
  msg: Buffer,
  top: RawField[],
  body: Buffer,
  key: SigningKey,
  opts: SignOptions = {},
): SignResult {
  const type = (fieldValue(top, 'content-type') ?? 'text/plain').split(';')[0]!.trim().toLowerCase()
  if (type === 'multipart/signed' && signedByKey(msg, key))
    return { kind: 'already_signed', reason: `already signed at the top by ${key.signingFingerprint}` }
  const contentFields = top.filter((f) => f.key.startsWith('content-'))
  let safe
  try {
    safe = makeSafe(contentFields, body)
  } catch (e) {
    if (e instanceof BrokenMimeError) return { kind: 'broken', reason: e.message }
    throw e
  }
  // Header protection belongs to the cleartext payload; an encrypted one carries its own (RFC 9788 §2).
  const fields =
    opts.protectedHeaders && type !== 'multipart/encrypted'
      ? protect(top, safe.fields, opts.hp ?? 'clear')
      : safe.fields
  const innerHead = Buffer.from(`${fieldsText(fields)}\r\n`, 'latin1')
  const boundary = opts.boundary ?? freshBoundary(innerHead, safe.body)
  // Part 1 is hashed as its two pieces and copied once, into the new body.
  const signature = detachedSignature(key, [innerHead, safe.body], opts.date ?? new Date())
  const out = Buffer.concat([
    Buffer.from(`${PREAMBLE}--${boundary}\r\n`, 'latin1'),
    innerHead,
    safe.body,
    Buffer.from(
      `\r\n--${boundary}\r\nContent-Type: application/pgp-signature; name="OpenPGP_signature.asc"\r\n` +
        'Content-Description: OpenPGP digital signature\r\n' +
        'Content-Disposition: attachment; filename="OpenPGP_signature.asc"\r\n\r\n' +
        `${signature}--${boundary}--\r\n`,
      'latin1',
    ),
  ])
  return { kind: 'signed', headers: topEdits(top, key, boundary), body: out }
}

/** The top-level MIME fields are replaced: the old ones now describe part 1. */
function topEdits(top: RawField[], key: SigningKey, boundary: string): HeaderEdit[] {
  const deletes: HeaderEdit[] = []
  const seen = new Map<string, number>()
  for (const f of top) {
    if (!f.key.startsWith('content-') && f.key !== 'mime-version') continue
    const index = (seen.get(f.key) ?? 0) + 1
    seen.set(f.key, index)
    deletes.push({ op: 'delete', name: f.raw.slice(0, f.raw.indexOf(':')).trim(), index })
  }
  // Highest index first, so each delete leaves the earlier indexes valid.
  deletes.reverse()
  const ct = `multipart/signed; micalg=${key.micalg}; protocol="application/pgp-signature"; boundary="${boundary}"`
  return [
    ...deletes,
    { op: 'append', name: 'MIME-Version', value: '1.0' },
    { op: 'append', name: 'Content-Type', value: ct },
  ]
}

/** Copies of the protected fields, then the content fields with hp="clear" on the Content-Type. */
function protect(top: RawField[], content: RawField[], mode: 'clear' | 'cipher'): RawField[] {
  const copies = top.filter((f) => PROTECTED.includes(f.key))
  const hp = (raw: string) => `${raw.replace(/\r\n$/, '')}; hp="${mode}"\r\n`
  const ct = content.find((f) => f.key === 'content-type')
  const rest = content.filter((f) => f !== ct)
  const marked = ct
    ? { key: ct.key, raw: /;\s*hp\s*=/i.test(ct.raw) ? ct.raw : hp(ct.raw) }
    : { key: 'content-type', raw: `Content-Type: text/plain; hp="${mode}"\r\n` }
  return [...copies, marked, ...rest]
}

/** Per process: a random part, then a counter (a boundary must only be absent from the part it encloses). */
const BOUNDARY_PREFIX = `=_linksec_${crypto.randomBytes(12).toString('base64url')}_`
let boundaries = 0

function freshBoundary(head: Buffer, body: Buffer): string {
  for (;;) {
    const b = `${BOUNDARY_PREFIX}${(boundaries++).toString(36)}`
    if (head.indexOf(b) === -1 && body.indexOf(b) === -1) return b
  }
}

/** True when the top-level signature is one this key made and it still verifies. */
function signedByKey(msg: Buffer, key: SigningKey): boolean {
  const form = findSignedForm(parseEntity(msg))
  if (form.kind !== 'signed' || form.form !== 'pgp-mime') return false
  let sigs
  try {
    sigs = readSignatures(form.signature)
  } catch (e) {
    if (e instanceof PacketError) return false
    throw e
  }
  const pub = { algo: key.algo, keyObject: crypto.createPublicKey(key.privateKey) }
  return sigs.some(
    (s) =>
      (s.issuerFingerprint === key.signingFingerprint ||
        s.issuerKeyId === key.keyId.toString('hex').toUpperCase()) &&
      verifyNative(s, form.data, pub) === 'valid',
  )
}
