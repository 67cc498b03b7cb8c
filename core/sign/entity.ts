/**
 * The entity a signature covers, made 7-bit safe first (RFC 3156 §3): a
 * part that would not cross a relay octet for octet is re-encoded (text as
 * quoted-printable, anything else as base64), multiparts are walked part
 * by part, and what is already safe is kept exactly as written. Decoding a
 * re-encoded part gives back its original octets.
 */
import {
  decodeTransfer,
  headerValue,
  parseContentType,
  parseHeaders,
  rawFields,
  splitEntity,
  splitMultipart,
  type RawField,
} from '../mime'
import { encodeBase64, encodeQuotedPrintable, needsEncoding } from './transfer'

/** Deeper nesting than this is not walked (RFC 2046 sets no limit; a message bomb would). */
const MAX_DEPTH = 32

export class BrokenMimeError extends Error {
  override name = 'BrokenMimeError'
}

export interface SafeEntity {
  fields: RawField[]
  body: Buffer
}

/**
 * `fields` and `body` of one entity, 7-bit safe. Throws BrokenMimeError
 * when a part that must be re-encoded sits in a multipart that cannot be
 * split (no boundary, never closed).
 */
export function makeSafe(fields: RawField[], body: Buffer, depth = 0): SafeEntity {
  const ct = parseContentType(fieldValue(fields, 'content-type'))
  if (!needsEncoding(body)) return { fields: tidyFields(fields), body }
  if (depth >= MAX_DEPTH) throw new BrokenMimeError(`MIME nested deeper than ${MAX_DEPTH} levels`)
  if (ct.type.startsWith('multipart/'))
    return { fields: tidyFields(fields), body: safeMultipart(ct.params.boundary, body, depth) }
  if (ct.type === 'message/rfc822' || ct.type === 'message/global') {
    const inner = safeMessage(body, depth)
    if (inner) return { fields: tidyFields(fields), body: inner }
  }
  const decoded = decodeTransfer(body, fieldValue(fields, 'content-transfer-encoding'))
  const text = ct.type.startsWith('text/')
  const cte = text ? 'quoted-printable' : 'base64'
  return {
    fields: withTransferEncoding(tidyFields(fields), cte),
    body: text ? encodeQuotedPrintable(decoded) : encodeBase64(decoded),
  }
}

function safeMultipart(boundary: string | undefined, body: Buffer, depth: number): Buffer {
  if (!boundary) throw new BrokenMimeError('a multipart without a boundary parameter')
  const mp = splitMultipart(body, boundary)
  if (!mp.closed) throw new BrokenMimeError(`the multipart with boundary "${boundary}" is never closed`)
  // The preamble and epilogue carry no content (RFC 2046 §5.1.1): they are dropped, not re-encoded.
  const out: Buffer[] = []
  for (const part of mp.parts) {
    const { head, body: partBody } = splitEntity(part)
    const safe = makeSafe(rawFields(head), partBody, depth + 1)
    out.push(Buffer.from(`--${boundary}\r\n`, 'latin1'), entityBytes(safe), Buffer.from('\r\n', 'latin1'))
  }
  out.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'))
  return Buffer.concat(out)
}

/**
 * message/rfc822 may only be 7bit, 8bit or binary (RFC 2046 §5.2.1), so its
 * body is made safe inside; undefined when its own header holds 8-bit
 * octets (the caller then base64-encodes the whole part, as mail clients do).
 */
function safeMessage(body: Buffer, depth: number): Buffer | undefined {
  const { head, body: innerBody } = splitEntity(body)
  if (needsEncoding(Buffer.from(head, 'latin1'))) return undefined
  const inner = makeSafe(rawFields(head), innerBody, depth + 1)
  return entityBytes(inner)
}

/** Header fields, then the blank line, then the body. */
export function entityBytes(e: SafeEntity): Buffer {
  return Buffer.concat([Buffer.from(`${fieldsText(e.fields)}\r\n`, 'latin1'), e.body])
}

/** The fields as written, each ending in CRLF. */
export function fieldsText(fields: readonly RawField[]): string {
  let head = ''
  for (const f of fields) head += f.raw.endsWith('\r\n') ? f.raw : `${f.raw}\r\n`
  return head
}

/** Drops blanks at line ends and blank-only continuation lines (a relay would strip them). */
function tidyFields(fields: RawField[]): RawField[] {
  return fields.map((f) => {
    if (!/[ \t]\r\n/.test(f.raw)) return f
    const lines = f.raw.split('\r\n').map((l) => l.replace(/[ \t]+$/, ''))
    const kept = lines.filter((l, i) => i === 0 || l !== '' || i === lines.length - 1)
    return { key: f.key, raw: kept.join('\r\n') }
  })
}

function withTransferEncoding(fields: RawField[], cte: string): RawField[] {
  const kept = fields.filter((f) => f.key !== 'content-transfer-encoding')
  return [...kept, { key: 'content-transfer-encoding', raw: `Content-Transfer-Encoding: ${cte}\r\n` }]
}

export function fieldValue(fields: RawField[], key: string): string | undefined {
  const f = fields.find((x) => x.key === key)
  return f && headerValue(parseHeaders(f.raw), key)
}
