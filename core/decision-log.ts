/**
 * One log line and one count per message decision, the same from every
 * adapter (milter, Haraka, `linksec verify`, enforcement). Operators grep the
 * line by queue id and graph `linksec_messages_total{adapter,verdict}`; both
 * come from this one call so they can never disagree.
 */
import type { LogFields, LogLevel } from './log'
import type { Adapter } from './metrics'
import type { Runtime } from './runtime'
import type { Verdict, VerdictAction } from './verdict'

export interface Decision {
  adapter: Adapter
  /** The MTA's queue id (Postfix `i` macro, Haraka transaction uuid) where known. */
  queueId?: string
  /** The verdict, or just its action when the caller has no Verdict object. */
  verdict: Verdict | VerdictAction
  /** Short machine reason; defaults to the Verdict's own reason. */
  reason?: string
  /** The level the message required (1..4 or "requiretls"), or the peer level, where one applies. */
  level?: number | string
  /** Domain of the envelope sender (or From:), lower-cased by the caller or here. */
  senderDomain?: string
  /** Anything else worth one field in the line (e.g. stage, recipient domain). */
  extra?: LogFields
}

/** Log levels per action: tempfails are what an operator must look at first. */
const LOG_LEVEL: Record<VerdictAction, LogLevel> = {
  continue: 'info',
  accept: 'info',
  reject: 'info',
  discard: 'info',
  quarantine: 'info',
  tempfail: 'warn',
}

/** The log level of a decision line for this action (tempfails first, everything else info). */
export function decisionLogLevel(action: VerdictAction): LogLevel {
  return LOG_LEVEL[action] ?? 'info'
}

/**
 * A message that goes on (continue, accept), carried no requirement, was
 * not signed here (a `sign` field other than not_ours) and was not a Web
 * Key Service message: most inbound mail. Under `[log] decisions = notable` (the default) its line is at
 * debug, as OpenDKIM logs no routine result unless asked (LogResults): in
 * Haraka every log line runs its log hooks and a synchronous write, ~30 µs
 * a message (bench/README.md, stop 21). Every message is still counted.
 */
export function isRoutine(d: Decision, action: VerdictAction): boolean {
  const sign = d.extra?.sign
  return (
    (action === 'continue' || action === 'accept') &&
    d.level === undefined &&
    (sign === undefined || sign === 'not_ours') &&
    d.extra?.wks === undefined
  )
}

/** Logs "decision" with the fields operators search by, and counts linksec_messages_total. */
export function logDecision(rt: Runtime, d: Decision): void {
  const v = typeof d.verdict === 'string' ? undefined : d.verdict
  const action = v?.action ?? (d.verdict as VerdictAction)
  try {
    rt.metrics.messages.inc({ adapter: d.adapter, verdict: action })
  } catch {
    // A metric failure must never change a mail decision.
  }
  const level =
    rt.config.log.decisions === 'notable' && isRoutine(d, action) ? 'debug' : decisionLogLevel(action)
  rt.log[level]('decision', decisionFields(d, action, v))
}

/** The fields of the decision line, undefined ones left out. */
export function decisionFields(d: Decision, action: VerdictAction, v?: Verdict): LogFields {
  const fields: LogFields = {
    adapter: d.adapter,
    queue_id: d.queueId,
    verdict: action,
    reason: d.reason ?? v?.reason,
    code: v?.code,
    enhanced: v?.enhanced,
    // Not "level": that field of the line is the log level.
    link_level: d.level,
    sender_domain: d.senderDomain?.toLowerCase(),
    ...d.extra,
  }
  for (const k of Object.keys(fields)) if (fields[k] === undefined) delete fields[k]
  return fields
}
