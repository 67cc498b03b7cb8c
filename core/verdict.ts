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
  return { action: 'reject', code, enhanced, text, reason }
}

export function tempfail(code: number, enhanced: string, text: string, reason: string): Verdict {
  if (code < 400 || code > 499 || !enhanced.startsWith('4.'))
    throw new Error(`tempfail needs a 4xx code: ${code} ${enhanced}`)
  return { action: 'tempfail', code, enhanced, text, reason }
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
