/**
 * Transfer encodings for signing (RFC 2045 §6): a signed entity must reach
 * the verifier octet for octet, so it is made 7-bit safe before signing
 * (RFC 3156 §3: relays may re-encode 8-bit data and strip trailing blanks).
 * Quoted-printable for text, base64 for everything else; neither leaves a
 * blank at a line's end.
 */

const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const TAB = 0x09
/** RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF. */
const MAX_LINE = 998
/** RFC 2045 §6.7 rule 5: encoded lines are at most 76 characters. */
const QP_LINE = 76

/**
 * True when `body` would not survive a relay unchanged: an octet above 127
 * or NUL, a CR or LF outside a CRLF pair, a line over 998 octets, a blank
 * before a line break or at the end, or a line starting "From " (mbox
 * writers turn it into ">From ").
 */
export function needsEncoding(body: Buffer): boolean {
  let lineStart = 0
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!
    if (c >= 0x80 || c === 0) return true
    if (c === CR) {
      if (body[i + 1] !== LF) return true
      if (i > lineStart && isBlank(body[i - 1]!)) return true
      if (i - lineStart > MAX_LINE) return true
      i++
      lineStart = i + 1
      if (body[lineStart] === 0x46 && fromLine(body, lineStart)) return true
    } else if (c === LF) return true
  }
  if (body.length > lineStart && isBlank(body[body.length - 1]!)) return true
  return body.length - lineStart > MAX_LINE || fromLine(body, 0)
}

function isBlank(c: number): boolean {
  return c === SP || c === TAB
}

function fromLine(b: Buffer, at: number): boolean {
  return b[at] === 0x46 && b.toString('latin1', at, at + 5) === 'From '
}

const HEX = '0123456789ABCDEF'

/**
 * Quoted-printable of text (RFC 2045 §6.7): CRLF pairs are line breaks,
 * every other CR or LF is encoded (=0D, =0A) so decoding gives back the
 * exact octets; blanks before a break, "=", octets outside 33-126 and the
 * "F" of a leading "From " are encoded; lines are soft-broken at 76.
 */
export function encodeQuotedPrintable(data: Buffer): Buffer {
  const out: string[] = []
  let line = ''
  const push = (tok: string) => {
    if (line.length + tok.length > QP_LINE - 1) {
      out.push(`${line}=\r\n`)
      line = ''
    }
    line += tok
  }
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!
    if (c === CR && data[i + 1] === LF) {
      out.push(`${line}\r\n`)
      line = ''
      i++
      continue
    }
    const next = data[i + 1]
    const atEnd = next === undefined || (next === CR && data[i + 2] === LF)
    if (isBlank(c) && !atEnd) push(String.fromCharCode(c))
    else if (c === 0x46 && line === '' && fromLine(data, i)) push('=46')
    else if (c >= 33 && c <= 126 && c !== 0x3d) push(String.fromCharCode(c))
    else push(`=${HEX[c >> 4]}${HEX[c & 15]}`)
  }
  if (line !== '') out.push(line)
  return Buffer.from(out.join(''), 'latin1')
}

/** Base64 in lines of 76 characters, each ending in CRLF (RFC 2045 §6.8). */
export function encodeBase64(data: Buffer): Buffer {
  const b64 = data.toString('base64')
  const lines: string[] = []
  for (let i = 0; i < b64.length; i += QP_LINE) lines.push(b64.slice(i, i + QP_LINE))
  return Buffer.from(lines.length ? `${lines.join('\r\n')}\r\n` : '', 'latin1')
}
