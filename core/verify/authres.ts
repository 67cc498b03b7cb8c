/**
 * Our own Authentication-Results field for sender signatures (docs/architecture.md §6.4),
 * never merged with SPF/DKIM/DMARC results (RFC 8601 §5: one field per authserv-id; SPF/DKIM/DMARC belong to their own):
 *
 *   mx.example.net; x-openpgp=pass header.from=alice@example.org
 *     body.openpgp-fingerprint=0123…CDEF (key from wkd_advanced)
 *
 * Properties follow RFC 8601 §2.3 (ptype.property=value); the fingerprint
 * uses the `body` ptype as RFC 7281 does for S/MIME (`body.smime-serial`).
 */
import * as os from 'node:os'
import type { LinksecConfig } from '../config'
import { safeText } from '../verdict'

export type SignatureResult = 'pass' | 'fail' | 'none' | 'neutral' | 'temperror' | 'permerror'

export interface ResultFacts {
  result: SignatureResult
  /** Words explaining the result (reason= for anything but pass). */
  reason: string
  from?: string
  fingerprint?: string
  /** Where the key came from: local, cache, wkd_advanced, wkd_direct, openpgpkey. */
  keySource?: string
  /**
   * The sender domain's CA (core/verify/ca-policy.ts): `policy.ca=<fpr>` when it
   * counted; a declared one that did not count is named in a comment, with why.
   */
  ca?: { fingerprint: string; counted: true } | { fingerprint: string; counted: false; why: string }
  /**
   * An unexplained key change (core/verify/continuity.ts):
   * `policy.key-change=<the fingerprint seen before>`.
   */
  keyChange?: { previous: string }
}

/** [main] authserv_id, or this host's name when empty. */
export function authservId(cfg: LinksecConfig): string {
  return cfg.main.authserv_id || os.hostname()
}

/** RFC 2045 value: a token when possible, else a quoted string. */
function value(v: string): string {
  return /^[A-Za-z0-9!#$%&'*+\-.^_`{|}~/@]+$/.test(v) ? v : `"${v.replace(/["\\]/g, '\\$&')}"`
}

/** A reason= long enough for a sentence and the value it quotes. */
const MAX_REASON = 400

/** Text inside an RFC 5322 comment: no parentheses or backslashes of its own. */
function commentText(t: string): string {
  return safeText(t, MAX_REASON).replace(/[()\\]/g, ' ')
}

/** The field value (without "Authentication-Results: "), one line; the adapter folds it. */
export function formatAuthResults(id: string, f: ResultFacts): string {
  const parts = [`x-openpgp=${f.result}`]
  // Reasons quote outside bytes (a From field, a key server's words): one sanitiser, core/verdict.ts.
  if (f.result !== 'pass') parts.push(`reason=${value(safeText(f.reason, MAX_REASON))}`)
  if (f.from) parts.push(`header.from=${value(safeText(f.from))}`)
  if (f.fingerprint) parts.push(`body.openpgp-fingerprint=${f.fingerprint}`)
  if (f.ca?.counted) parts.push(`policy.ca=${f.ca.fingerprint}`)
  if (f.keyChange) parts.push(`policy.key-change=${f.keyChange.previous}`)
  if (f.keySource) parts.push(`(key from ${f.keySource})`)
  if (f.ca && !f.ca.counted) parts.push(`(ca=${f.ca.fingerprint} ignored: ${commentText(f.ca.why)})`)
  if (f.keyChange)
    parts.push(
      `(the key changed from ${f.keyChange.previous}, not explained by the domain CA or a published overlap)`,
    )
  return `${value(id)}; ${parts.join(' ')}`
}
