/**
 * A Verdict is the one answer the core gives an adapter: what to tell the
 * client, with the SMTP reply code, the enhanced status code (RFC 3463) and a
 * sentence a person can act on. Adapters translate it, nothing more.
 */
export type VerdictAction = 'continue' | 'accept' | 'tempfail' | 'reject' | 'discard' | 'quarantine'

export interface Verdict {
  action: VerdictAction
  /** SMTP reply code, e.g. 550 or 451; absent for continue/accept. */
  code?: number
  /** Enhanced status code, e.g. "5.7.10". */
  enhanced?: string
  /** Human sentence for the SMTP reply (no code prefix). */
  text?: string
  /** Short machine reason for logs and metric labels, e.g. "tagged_plaintext". */
  reason: string
}

export const CONTINUE: Verdict = Object.freeze({ action: 'continue', reason: 'ok' })

export function accept(reason = 'ok'): Verdict {
  return { action: 'accept', reason }
}

export function reject(code: number, enhanced: string, text: string, reason: string): Verdict {
  if (code < 500 || code > 599 || !enhanced.startsWith('5.'))
    throw new Error(`reject needs a 5xx code: ${code} ${enhanced}`)
  return { action: 'reject', code, enhanced, text: safeText(text, MAX_REPLY_TEXT), reason }
}

export function tempfail(code: number, enhanced: string, text: string, reason: string): Verdict {
  if (code < 400 || code > 499 || !enhanced.startsWith('4.'))
    throw new Error(`tempfail needs a 4xx code: ${code} ${enhanced}`)
  return { action: 'tempfail', code, enhanced, text: safeText(text, MAX_REPLY_TEXT), reason }
}

/** The answer for "linksec could not decide": never lose mail, never accept blindly. */
export function internalError(reason = 'internal_error'): Verdict {
  return tempfail(451, '4.3.0', 'linksec could not check this message; please try again later', reason)
}

/** A header change the core asks for; applied by the adapter at end of message. */
export type HeaderEdit =
  | { op: 'prepend'; name: string; value: string }
  | { op: 'append'; name: string; value: string }
  /** Remove the index-th (1-based, per name) occurrence of a header. */
  | { op: 'delete'; name: string; index: number }

export interface MessageDecision {
  verdict: Verdict
  headers: HeaderEdit[]
}

/** "550 5.7.10 text" — the reply line adapters print. */
export function formatReply(v: Verdict): string {
  if (v.code === undefined) return ''
  return `${v.code} ${v.enhanced ?? ''} ${v.text ?? ''}`.replace(/\s+/g, ' ').trim()
}

// ------------------------------------------------------------------ text linksec writes

/*
 * The one sanitiser for every text linksec writes into a header field or an
 * SMTP reply: reasons quote attacker bytes (a From field, a key server's
 * answer), so nothing leaves without passing here. Strings are Unicode
 * (header bytes are decoded as UTF-8 where valid, core/mime.ts);
 * adapters encode what they write as UTF-8.
 */

/** A whole reply text (all lines): a person reads it, a novel does not help. */
export const MAX_REPLY_TEXT = 2000
/** A header value we write: several folded lines at most. */
export const MAX_HEADER_VALUE = 8000
/** An outside value quoted inside a reason (a From field, a URL, a server's words). */
export const MAX_QUOTED = 200
/** RFC 5322 §2.1.1: lines SHOULD stay within 78 characters and MUST within 998. */
const FOLD_AT = 78
const MAX_HEADER_LINE = 998

/**
 * Never written: C0 controls (HTAB apart), DEL, C1 controls, and the Unicode
 * line separators and bidirectional overrides that make text display other
 * than it reads (CVE-2021-42574 style).
 */
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g

/** Cuts s to max characters, at a space when there is one in the last quarter, marked "...". */
export function capText(s: string, max: number): string {
  if (s.length <= max) return s
  const cut = s.lastIndexOf(' ', max - 3)
  return `${s.slice(0, cut > (max * 3) / 4 ? cut : max - 3)}...`
}

/**
 * One line of text: unsafe characters and line breaks become spaces, runs of
 * white space one space, capped at `max`. For outside values quoted in a
 * reason, and for reasons themselves.
 */
export function safeText(s: string, max = MAX_QUOTED): string {
  return capText(
    s
      .replace(UNSAFE, ' ')
      .replace(/[ \t]+/g, ' ')
      .trim(),
    max,
  )
}

/**
 * One line of an SMTP reply: RFC 5321 §4.2 reply text is printable ASCII;
 * controls become spaces, anything else '?'.
 */
export function safeReplyLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, ' ').replace(/[^\x20-\x7e]/g, '?')
}

/**
 * A header field value as written: existing folds (a line break followed by
 * white space) kept as LF + white space, the form libmilter and Haraka take;
 * any other line break becomes a space (it would start a new field: header
 * injection); unsafe characters become spaces; capped at MAX_HEADER_VALUE and
 * folded before white space so no line passes 78 characters where the text
 * allows it (`nameLength` counts the "Name: " the first line carries), none
 * passes 998. Unfolding (RFC 5322 §2.2.3) gives back the capped value.
 */
export function safeHeaderValue(value: string, nameLength = 0): string {
  if (!isClean(value)) return rewriteHeaderValue(value, nameLength)
  return fitsWidth(value, nameLength) ? value : foldLines(value.split('\n'), nameLength)
}

/** UNSAFE less LF: an LF is allowed where it starts a fold. */
const UNSAFE_BUT_LF = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/
const BARE_LF = /\n(?![ \t])/

/**
 * True when cleaning would not change the value: within MAX_HEADER_VALUE,
 * nothing unsafe, no CR, and every LF followed by white space (a fold).
 * Our own values (Authentication-Results) are so, and checking costs a
 * fraction of the rewrite that runs on every message otherwise.
 */
function isClean(value: string): boolean {
  return value.length <= MAX_HEADER_VALUE && !UNSAFE_BUT_LF.test(value) && !BARE_LF.test(value)
}

/** Every line of a clean value within the fold width: folding would leave it as it is. */
function fitsWidth(value: string, nameLength: number): boolean {
  let budget = FOLD_AT - nameLength - 2
  let start = 0
  for (;;) {
    const end = value.indexOf('\n', start)
    if ((end < 0 ? value.length : end) - start > budget) return false
    if (end < 0) return true
    start = end + 1
    budget = FOLD_AT
  }
}

/** safeHeaderValue for any value, the slow way; exported for the property test that pins the fast path to it. */
export function rewriteHeaderValue(value: string, nameLength = 0): string {
  const lines = capText(value, MAX_HEADER_VALUE)
    .replace(/\r\n(?=[ \t])/g, '\n')
    .replace(/\r|\n(?![ \t])/g, ' ')
    .split('\n')
    .map((l) => l.replace(UNSAFE, ' '))
  return foldLines(lines, nameLength)
}

/** Each line folded; the first line also carries the "Name: " (`nameLength` + 2 columns). */
function foldLines(lines: string[], nameLength: number): string {
  let first = true
  return lines
    .flatMap((l) => {
      const out = fold(l, first ? nameLength + 2 : 0)
      first = false
      return out
    })
    .join('\n')
}

/** Breaks one line before white space at 78 columns where possible; hard at 998. */
function fold(line: string, used: number): string[] {
  const out: string[] = []
  let rest = line
  let budget = FOLD_AT - used
  while (rest.length > budget) {
    // Never break at position 0: a line must carry text besides its leading blank.
    let at = rest.lastIndexOf(' ', budget)
    if (at <= 0) at = rest.indexOf(' ', 1)
    if (at <= 0 || at > MAX_HEADER_LINE - used) {
      if (rest.length <= MAX_HEADER_LINE - used) break
      const cut = MAX_HEADER_LINE - used - 1
      out.push(rest.slice(0, cut))
      rest = `\t${rest.slice(cut)}`
    } else {
      out.push(rest.slice(0, at))
      rest = rest.slice(at)
    }
    used = 0
    budget = FOLD_AT
  }
  out.push(rest)
  return out
}
