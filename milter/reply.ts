/**
 * Verdicts to milter replies. A reject or tempfail goes out as
 * SMFIR_REPLYCODE so the client sees our enhanced status code and sentence,
 * not Postfix's generic "Command rejected".
 *
 * Postfix (milter8.c) checks: first digit 4 or 5, two more digits, then ' '
 * or '-', and the enhanced code's class must equal the reply's. Sendmail used
 * the text as a printf format, so Postfix turns "%%" into "%" and drops a
 * lone "%": every "%" of ours is doubled.
 */
import { internalError, type Verdict } from '../core/verdict'
import type { MilterResponse } from './wire/types'

/** SMTP reply lines stay well under the 512-octet limit of RFC 5321 §4.5.3.1.5. */
const MAX_LINE_TEXT = 400

function wrap(text: string): string[] {
  const lines: string[] = []
  for (const paragraph of text.split(/\r?\n/)) {
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
  const status = enhanced && enhanced.startsWith(`${cls}.`) ? enhanced : `${cls}.0.0`
  // Control characters would break the SMTP reply; '%' is Postfix's escape.
  const clean = text.replace(/[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]/g, ' ').replace(/%/g, '%%')
  const lines = wrap(clean)
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
