/**
 * Verdict -> Haraka reply, in one table. Haraka picks the SMTP code itself
 * (DENY -> 550, DENYSOFT -> 450 at MAIL/RCPT/DATA) unless the message is a
 * haraka-dsn object, whose code and "X.Y.Z text" reply it prints verbatim
 * (connection.js respond(): `msg.constructor.name === 'DSN'`). So every reply
 * goes out as a DSN and the client sees exactly the Verdict's code, enhanced
 * status and sentence, e.g. `550 5.7.10 …` or `451 4.3.0 …`.
 */
import type { Verdict, VerdictAction } from '../core/verdict'
import { CONT, DENY, DENYSOFT } from './haraka'

interface DsnModule {
  create(code: number, msg: string, subject: number, detail: number): object
}
const DSN = require('haraka-dsn') as DsnModule

/** What to pass to `next()`: the code, and a message only for refusals. */
export type HarakaReply = [code: number, msg?: object]

const CODE_FOR: Record<VerdictAction, number | undefined> = {
  continue: CONT,
  accept: CONT,
  reject: DENY,
  tempfail: DENYSOFT,
  // The message is accepted; Haraka's queue/quarantine and queue/discard
  // plugins act on the notes plugins/message.ts sets (applyResult).
  quarantine: CONT,
  discard: CONT,
}

/** A DSN object carrying the Verdict's reply code and enhanced status. */
export function dsnFor(v: Verdict): object {
  const [, subject, detail] = (v.enhanced ?? '').split('.').map(Number)
  const code = v.code ?? (v.action === 'reject' ? 550 : 451)
  return DSN.create(code, v.text ?? 'linksec refused this', subject || 0, detail || 0)
}

export function harakaReply(v: Verdict): HarakaReply {
  const code = CODE_FOR[v.action] ?? DENYSOFT
  if (code === CONT) return [CONT]
  return [code, dsnFor(v)]
}
