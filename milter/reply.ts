/**
 * Verdicts to milter replies. A reject or tempfail goes out as
 * SMFIR_REPLYCODE so the client sees our enhanced status code and sentence,
 * not Postfix's generic "Command rejected".
 *
 * Postfix (milter8.c) checks: first digit 4 or 5, two more digits, then ' '
 * or '-', and the enhanced code's class must equal the reply's. Sendmail used
 * the text as a printf format, so Postfix turns "%%" into "%" and drops a
 * lone "%": every "%" of ours is doubled.
 *
 * Everything here may carry attacker bytes (a From header quoted in a
 * reason), so every text the milter writes is cleaned on the way out: no
 * CR, LF, NUL or other control character outside a fold, and a length cap.
 */
import {
  capText as cap,
  internalError,
  MAX_HEADER_VALUE,
  MAX_REPLY_TEXT,
  safeHeaderValue as coreSafeHeaderValue,
  safeReplyLine as cleanLine,
  type Verdict,
} from '../core/verdict'
import type { MilterResponse } from './wire/types'

export { MAX_HEADER_VALUE, MAX_REPLY_TEXT }

/** SMTP reply lines stay well under the 512-octet limit of RFC 5321 §4.5.3.1.5. */
const MAX_LINE_TEXT = 400

function wrap(text: string): string[] {
  const lines: string[] = []
  for (const paragraph of text.split(/\r\n|\r|\n/)) {
    let line = ''
    for (const word of paragraph.split(' ')) {
      if (line && line.length + 1 + word.length > MAX_LINE_TEXT) {
        lines.push(line)
        line = ''
      }
      line = line ? `${line} ${word}` : word.slice(0, MAX_LINE_TEXT)
    }
    lines.push(line)
  }
  return lines
}

/** "550 5.7.10 text" (or multi-line "550-5.7.10 a\r\n550 5.7.10 b") for SMFIR_REPLYCODE. */
export function replyCodeText(code: number, enhanced: string | undefined, text: string): string {
  const cls = String(code)[0]!
  const status =
    enhanced && /^[245]\.\d{1,3}\.\d{1,3}$/.test(enhanced) && enhanced.startsWith(`${cls}.`)
      ? enhanced
      : `${cls}.0.0`
  // Line breaks become separate reply lines; any other control character would break the reply.
  const paragraphs = cap(text, MAX_REPLY_TEXT).split(/\r\n|\r|\n/)
  // '%' is Postfix's escape, doubled after cleaning so the cap never splits a pair.
  const lines = wrap(paragraphs.map((p) => cleanLine(p).replace(/%/g, '%%')).join('\n'))
  return lines
    .map((l, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${status} ${l}`.trimEnd())
    .join('\r\n')
}

/** The final milter reply for a verdict. */
export function verdictResponse(v: Verdict): MilterResponse {
  switch (v.action) {
    case 'continue':
      return { type: 'continue' }
    case 'accept':
      return { type: 'accept' }
    case 'discard':
      return { type: 'discard' }
    case 'quarantine':
      // The quarantine action itself is a modification; the reply lets the message through to HOLD.
      return { type: 'continue' }
    case 'reject':
    case 'tempfail': {
      const code = v.code ?? (v.action === 'reject' ? 550 : 451)
      return { type: 'replyCode', text: replyCodeText(code, v.enhanced, v.text ?? v.reason) }
    }
  }
}

/** What every catch-all answers: never accept what we could not check. */
export const INTERNAL_ERROR_REPLY: MilterResponse = verdictResponse(internalError())

/**
 * A header value as libmilter's smfi_addheader wants it: folded lines
 * separated by a bare LF followed by a space or tab (the MTA adds the CR),
 * no other control character, folded at 78 and capped — core/verdict.ts's
 * sanitiser, the one every adapter uses.
 */
export function safeHeaderValue(value: string, nameLength = 0): string {
  return coreSafeHeaderValue(value, nameLength)
}

/** A quarantine reason (SMFIR_QUARANTINE): one line of printable text. */
function safeReasonText(text: string): string {
  return cleanLine(cap(text, MAX_LINE_TEXT))
}

/** The same response with every text it carries made safe to write. */
export function safeModification(m: MilterResponse): MilterResponse {
  switch (m.type) {
    case 'addHeader':
    case 'insertHeader':
    case 'changeHeader':
      return { ...m, value: safeHeaderValue(m.value, m.name.length) }
    case 'quarantine':
      return { ...m, reason: safeReasonText(m.reason) }
    default:
      return m
  }
}
