/**
 * Just enough MIME to find a signed part byte-exact (RFC 3156 §5): header
 * blocks, Content-Type parameters, multipart bodies split on their
 * delimiter lines and transfer decodings. Everything works on Buffers so the
 * signed octets are never re-encoded. Bodies become strings as latin1 (one
 * char per byte, exact round trip); header blocks are where bytes become
 * text: UTF-8 (RFC 6532) when the block is valid UTF-8, else latin1, decided
 * once here (decodeHeaderBlock).
 */
import { isUtf8 } from 'node:buffer'

export interface HeaderField {
  /** Name as written. */
  name: string
  /** Lower-cased name, for lookups. */
  key: string
  /** Unfolded value with the leading blank removed (decoded by decodeHeaderBlock). */
  value: string
}

export interface Entity {
  headers: HeaderField[]
  /** The body octets, after the blank line. */
  body: Buffer
}

export interface ContentType {
  /** "multipart/signed", lower-cased; "text/plain" when absent (RFC 2045 §5.2). */
  type: string
  /** Parameter names lower-cased; values unquoted. */
  params: Record<string, string>
}

const CR = 0x0d
const LF = 0x0a

/** Converts bare LF to CRLF (messages read from files); CRLF input is returned as is. */
export function toCrlf(buf: Buffer): Buffer {
  let bare = false
  for (let i = buf.indexOf(LF); i !== -1; i = buf.indexOf(LF, i + 1)) {
    if (i === 0 || buf[i - 1] !== CR) {
      bare = true
      break
    }
  }
  if (!bare) return buf
  return Buffer.from(buf.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1')
}

/** Splits an entity at the first empty line; a header-only entity has an empty body. */
export function parseEntity(buf: Buffer): Entity {
  let end = -1
  let bodyAt = buf.length
  if (buf.subarray(0, 2).toString('latin1') === '\r\n') {
    end = 0
    bodyAt = 2
  } else {
    const at = buf.indexOf('\r\n\r\n')
    if (at !== -1) {
      end = at + 2
      bodyAt = at + 4
    }
  }
  const head = end === -1 ? buf : buf.subarray(0, end)
  return { headers: parseHeaders(decodeHeaderBlock(head)), body: buf.subarray(bodyAt) }
}

/**
 * Header bytes as text: UTF-8 when they are valid UTF-8 (RFC 6532 headers,
 * and every ASCII header), otherwise latin1 so that no byte is lost or
 * turned into U+FFFD (an 8-bit legacy header still shows what it held).
 */
export function decodeHeaderBlock(head: Buffer): string {
  return isUtf8(head) ? head.toString('utf8') : head.toString('latin1')
}

/** Header lines, unfolded (RFC 5322 §2.2.3). Lines without a colon are skipped. */
export function parseHeaders(text: string): HeaderField[] {
  const out: HeaderField[] = []
  for (const line of text.split('\r\n')) {
    if (line === '') continue
    if ((line[0] === ' ' || line[0] === '\t') && out.length > 0) {
      out[out.length - 1]!.value += line
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim()
    out.push({ name, key: name.toLowerCase(), value: line.slice(colon + 1).trim() })
  }
  return out
}

export function headerValues(headers: readonly HeaderField[], name: string): string[] {
  const key = name.toLowerCase()
  return headers.filter((h) => h.key === key).map((h) => h.value)
}

/** The single value of a header, or undefined when absent. */
export function headerValue(headers: readonly HeaderField[], name: string): string | undefined {
  const key = name.toLowerCase()
  for (const h of headers) if (h.key === key) return h.value
  return undefined
}

/** RFC 2045 Content-Type with its parameters; quoted strings and comments handled. */
export function parseContentType(value: string | undefined): ContentType {
  if (value === undefined) return { type: 'text/plain', params: {} }
  const tokens = splitParams(value)
  const type = (tokens.shift() ?? '').trim().toLowerCase()
  const params: Record<string, string> = {}
  for (const t of tokens) {
    const eq = t.indexOf('=')
    if (eq <= 0) continue
    const name = t.slice(0, eq).trim().toLowerCase()
    let v = t.slice(eq + 1).trim()
    if (v.startsWith('"')) {
      v = v.slice(1, v.endsWith('"') && v.length > 1 ? -1 : undefined)
      if (v.includes('\\')) v = v.replace(/\\(.)/g, '$1')
    }
    if (!(name in params)) params[name] = v
  }
  return { type: type || 'text/plain', params }
}

/**
 * Splits at semicolons outside quoted strings, dropping (comments). Runs of
 * plain text are sliced, not copied a character at a time: a quoted value
 * (every multipart/signed type has one) made the per-character version
 * allocate ~2 KB per call (bench/README.md, stop 21).
 */
function splitParams(value: string): string[] {
  // Most values have no quotes or comments: a plain split is exact for them.
  if (!value.includes('"') && !value.includes('(')) return value.split(';')
  const out: string[] = []
  let cur = ''
  let from = 0 // start of the plain run not yet in `cur`
  let quoted = false
  let depth = 0
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (quoted) {
      if (c === 0x5c)
        i++ // a backslash keeps the next character (unquoted later)
      else if (c === 0x22) quoted = false
    } else if (depth > 0) {
      if (c === 0x28) depth++
      else if (c === 0x29 && --depth === 0) from = i + 1
    } else if (c === 0x22) quoted = true
    else if (c === 0x28) {
      cur += value.slice(from, i)
      depth = 1
    } else if (c === 0x3b) {
      out.push(cur + value.slice(from, i))
      cur = ''
      from = i + 1
    }
  }
  out.push(depth > 0 ? cur : cur + value.slice(from))
  return out
}

export interface Multipart {
  /** Each part's octets: after its delimiter line, up to (excluding) the CRLF before the next. */
  parts: Buffer[]
  /** True when the close delimiter `--boundary--` was found. */
  closed: boolean
}

/**
 * Splits a multipart body (RFC 2046 §5.1.1). A delimiter is a line starting
 * with `--boundary`, optionally followed by blanks; the CRLF before it belongs
 * to the delimiter, which is what makes the signed octets exact (RFC 3156 §5).
 */
export function splitMultipart(body: Buffer, boundary: string): Multipart {
  const delim = Buffer.from(`--${boundary}`, 'latin1')
  const parts: Buffer[] = []
  let partStart = -1
  let pos = 0
  while (pos <= body.length) {
    const at = body.indexOf(delim, pos)
    if (at === -1) break
    const atLineStart = at === 0 || (at >= 2 && body[at - 1] === LF && body[at - 2] === CR)
    const lineEnd = body.indexOf('\r\n', at)
    const eol = lineEnd === -1 ? body.length : lineEnd
    const rest = body.subarray(at + delim.length, eol).toString('latin1')
    const close = rest.startsWith('--')
    if (!atLineStart || !/^[ \t]*$/.test(close ? rest.slice(2) : rest)) {
      pos = at + delim.length
      continue
    }
    if (partStart !== -1) parts.push(body.subarray(partStart, at === 0 ? 0 : at - 2))
    if (close) return { parts, closed: true }
    partStart = lineEnd === -1 ? body.length : lineEnd + 2
    pos = partStart
  }
  return { parts, closed: false }
}

/** Decodes a body by its Content-Transfer-Encoding; unknown encodings are returned as is. */
export function decodeTransfer(body: Buffer, encoding: string | undefined): Buffer {
  const enc = (encoding ?? '').trim().toLowerCase()
  if (enc === 'base64') return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64')
  if (enc === 'quoted-printable') return decodeQuotedPrintable(body)
  return body
}

/** RFC 2045 §6.7: `=XX` octets and `=` soft line breaks. */
export function decodeQuotedPrintable(body: Buffer): Buffer {
  const s = body.toString('latin1').replace(/[ \t]+\r\n/g, '\r\n')
  const out = Buffer.alloc(s.length)
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x3d) {
      if (s[i + 1] === '\r' && s[i + 2] === '\n') {
        i += 2
        continue
      }
      const hex = s.slice(i + 1, i + 3)
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        out[n++] = parseInt(hex, 16)
        i += 2
        continue
      }
    }
    out[n++] = c
  }
  return out.subarray(0, n)
}

/** One header field as written: its lower-cased name and its raw octets, folding and CRLF included. */
export interface RawField {
  key: string
  raw: string
}

/** The fields of a header block, each kept exactly as written (latin1); lines without a colon are kept with key "". */
export function rawFields(head: string): RawField[] {
  const out: RawField[] = []
  for (const line of head.split(/(?<=\r\n)/)) {
    if (line === '' || line === '\r\n') continue
    if ((line[0] === ' ' || line[0] === '\t') && out.length > 0) {
      out[out.length - 1]!.raw += line
      continue
    }
    const colon = line.indexOf(':')
    out.push({ key: colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '', raw: line })
  }
  return out
}

/** Splits an entity into its raw header block (up to the blank line) and its body. */
export function splitEntity(buf: Buffer): { head: string; body: Buffer } {
  if (buf.subarray(0, 2).toString('latin1') === '\r\n') return { head: '', body: buf.subarray(2) }
  const at = buf.indexOf('\r\n\r\n')
  if (at === -1) return { head: buf.toString('latin1'), body: buf.subarray(buf.length) }
  return { head: buf.toString('latin1', 0, at + 2), body: buf.subarray(at + 4) }
}
