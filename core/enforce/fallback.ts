/**
 * The seed's "pick up your message" section: a MIME part marked
 * `Link-Security-Fallback: yes` may be delivered alone when the whole message
 * cannot go out securely and the operator chose `fallback =
 * deliver_safe_part`. This builds that smaller message: the original
 * envelope headers, the marked part as the only body, the tag removed (the
 * safe part needs no secure path) and a header saying what happened.
 */
import { FALLBACK_HEADER, REQUIREMENT_HEADER } from '../levels'

export const PARTIAL_HEADER = 'Link-Security-Partial'

/** Deepest multipart nesting searched; real messages rarely exceed 4. */
const MAX_DEPTH = 8

interface Header {
  name: string
  /** The whole field as written (folded lines included, without the final CRLF). */
  raw: string
  value: string
}

interface Entity {
  headers: Header[]
  body: string
}

/** Splits a MIME entity at its first empty line (CRLF or LF). */
function splitEntity(text: string): Entity {
  const m = /\r?\n\r?\n/.exec(text)
  const head = m ? text.slice(0, m.index) : text
  const body = m ? text.slice(m.index + m[0].length) : ''
  return { headers: parseHeaders(head), body }
}

function parseHeaders(head: string): Header[] {
  const out: Header[] = []
  for (const line of head.split(/\r?\n/)) {
    const last = out[out.length - 1]
    if (/^[ \t]/.test(line) && last) {
      last.raw += `\r\n${line}`
      last.value += ` ${line.trim()}`
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    out.push({ name: line.slice(0, colon).trim(), raw: line, value: line.slice(colon + 1).trim() })
  }
  return out
}

function headerValue(e: Entity, name: string): string | undefined {
  return e.headers.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value
}

function boundaryOf(e: Entity): string | undefined {
  const ct = headerValue(e, 'Content-Type') ?? ''
  if (!/^\s*multipart\//i.test(ct)) return undefined
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))/i.exec(ct)
  return m ? (m[1] ?? m[2]) : undefined
}

/** The body parts of a multipart entity (RFC 2046 §5.1.1); preamble and epilogue dropped. */
function childParts(e: Entity, boundary: string): Entity[] {
  const delimiter = new RegExp(`(?:^|\\r?\\n)--${escapeRegExp(boundary)}(--)?[ \\t]*(?=\\r?\\n|$)`, 'g')
  const parts: Entity[] = []
  let start = -1
  for (let m = delimiter.exec(e.body); m; m = delimiter.exec(e.body)) {
    if (start >= 0) parts.push(splitEntity(e.body.slice(start, m.index).replace(/^\r?\n/, '')))
    if (m[1]) break
    start = m.index + m[0].length
  }
  return parts
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

function isMarked(e: Entity): boolean {
  return (
    (headerValue(e, FALLBACK_HEADER) ?? '')
      .replace(/\([^)]*\)/g, '')
      .trim()
      .toLowerCase() === 'yes'
  )
}

/** The first part marked Link-Security-Fallback: yes, depth first; never the top-level entity. */
function findMarked(e: Entity, depth: number): Entity | undefined {
  const boundary = boundaryOf(e)
  if (!boundary || depth > MAX_DEPTH) return undefined
  for (const part of childParts(e, boundary)) {
    if (isMarked(part)) return part
    const inner = findMarked(part, depth + 1)
    if (inner) return inner
  }
  return undefined
}

/** True when the message has a part the fallback could deliver. */
export function hasSafePart(message: string): boolean {
  return findMarked(splitEntity(message), 0) !== undefined
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
  const top = splitEntity(message)
  const part = findMarked(top, 0)
  if (!part) return undefined
  const kept = top.headers.filter((h) => !DROPPED.has(h.name.toLowerCase())).map((h) => h.raw)
  const note = `${PARTIAL_HEADER}: only the part marked ${FALLBACK_HEADER} was delivered; ${why.replace(/[\r\n]+/g, ' ')}`
  const partHeaders = part.headers.filter((h) => h.name.toLowerCase() !== 'mime-version').map((h) => h.raw)
  // The delimiter owns the CRLF before it (RFC 2046 §5.1.1); end the last line again.
  const body = part.body.replace(/\r?\n/g, '\r\n').replace(/(?<!\r\n)$/, '\r\n')
  return [...kept, note, 'MIME-Version: 1.0', ...partHeaders].join('\r\n') + '\r\n\r\n' + body
}
