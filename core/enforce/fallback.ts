/**
 * The "pick up your message" fallback ([enforce] fallback, docs/operators.md):
 * a MIME part marked `Link-Security-Fallback: yes` may be delivered alone when the whole message
 * cannot go out securely and the operator chose `fallback =
 * deliver_safe_part`. This builds that smaller message: the original
 * envelope headers, the marked part as the only body, the tag removed (the
 * safe part needs no secure path) and a header saying what happened. The
 * message is read with core/mime.ts, the one MIME parser.
 */
import { FALLBACK_HEADER, REQUIREMENT_HEADER } from '../levels'
import {
  headerValue,
  parseContentType,
  parseEntity,
  rawFields,
  splitEntity,
  splitMultipart,
  toCrlf,
} from '../mime'

export const PARTIAL_HEADER = 'Link-Security-Partial'

/** Deepest multipart nesting searched; real messages rarely exceed 4. */
const MAX_DEPTH = 8

function isMarked(part: Buffer): boolean {
  return (
    (headerValue(parseEntity(part).headers, FALLBACK_HEADER) ?? '')
      .replace(/\([^)]*\)/g, '')
      .trim()
      .toLowerCase() === 'yes'
  )
}

/**
 * The first part marked Link-Security-Fallback: yes, depth first; never the
 * top-level entity. Parts are split on delimiter lines only (RFC 2046 §5.1.1:
 * `--boundary` alone on its line, blanks allowed after it), so a longer line
 * that merely starts with the boundary never splits a part.
 */
function findMarked(e: Buffer, depth: number): Buffer | undefined {
  if (depth > MAX_DEPTH) return undefined
  const entity = parseEntity(e)
  const ct = parseContentType(headerValue(entity.headers, 'content-type'))
  const boundary = ct.params.boundary
  if (!ct.type.startsWith('multipart/') || !boundary) return undefined
  for (const part of splitMultipart(entity.body, boundary).parts) {
    if (isMarked(part)) return part
    const inner = findMarked(part, depth + 1)
    if (inner) return inner
  }
  return undefined
}

/** The message as octets with CRLF line ends; callers hand it over as a latin1 string. */
function octets(message: string): Buffer {
  return toCrlf(Buffer.from(message, 'latin1'))
}

/** True when the message has a part the fallback could deliver. */
export function hasSafePart(message: string): boolean {
  return findMarked(octets(message), 0) !== undefined
}

/** The fields of a header block as written, without their final CRLF; lines that are no field are dropped. */
function fieldsOf(head: string): { key: string; raw: string }[] {
  return rawFields(head)
    .filter((f) => f.key !== '')
    .map((f) => ({ key: f.key, raw: f.raw.replace(/\r\n$/, '') }))
}

/** Outer headers that describe the old body or the tag, not the message. */
const DROPPED = new Set([
  'content-type',
  'content-transfer-encoding',
  'content-disposition',
  'content-id',
  'content-description',
  'mime-version',
  'dkim-signature',
  REQUIREMENT_HEADER.toLowerCase(),
  PARTIAL_HEADER.toLowerCase(),
])

/**
 * The message carrying only the marked part, or undefined when there is none.
 * `why` ends up in the Link-Security-Partial header the recipient sees.
 */
export function buildSafePartMessage(message: string, why: string): string | undefined {
  const whole = octets(message)
  const part = findMarked(whole, 0)
  if (!part) return undefined
  const kept = fieldsOf(splitEntity(whole).head)
    .filter((f) => !DROPPED.has(f.key))
    .map((f) => f.raw)
  const note = `${PARTIAL_HEADER}: only the part marked ${FALLBACK_HEADER} was delivered; ${why.replace(/[\r\n]+/g, ' ')}`
  const inner = splitEntity(part)
  const partHeaders = fieldsOf(inner.head)
    .filter((f) => f.key !== 'mime-version')
    .map((f) => f.raw)
  // The delimiter owns the CRLF before it (RFC 2046 §5.1.1); end the last line again.
  const body = inner.body.toString('latin1').replace(/(?<!\r\n)$/, '\r\n')
  return [...kept, note, 'MIME-Version: 1.0', ...partHeaders].join('\r\n') + '\r\n\r\n' + body
}
