/**
 * The end-of-message pipeline at Haraka's data_post: every duty's message
 * step runs in order on the same view of the message; the first verdict that
 * is not `continue` decides, header edits are applied only if the message goes
 * on, and one decision line + linksec_messages_total count is written per
 * message (core/decision-log.ts).
 */
import { logDecision } from '../core/decision-log'
import { messageRequirement, REQUIREMENT_HEADER, TLS_REQUIRED_HEADER } from '../core/levels'
import { isTls } from '../core/inbound'
import { CONTINUE, type HeaderEdit, type Verdict } from '../core/verdict'
import type { Duty, DutyContext, MessageContext } from './duty'
import type { HarakaConnection, Next } from './haraka'
import { applyHeaderEdits, flushStagedHeaders } from './headers'
import { tlsFactsOf } from './inbound'
import { linksecNotes } from './notes'
import { harakaReply } from './reply'

/** Builds the read-only view every step sees, and records it in transaction.notes.linksec. */
export function messageContext(ctx: DutyContext, conn: HarakaConnection): MessageContext {
  const txn = conn.transaction
  if (!txn) throw new Error('data_post without a transaction')
  const notes = linksecNotes(txn)
  const headers = (name: string) => txn.header.get_all(name)
  const tls = tlsFactsOf(conn)
  const requirement = messageRequirement({
    requiretlsParam: notes.requiretls === true,
    requirementHeaders: headers(REQUIREMENT_HEADER),
    tlsRequiredHeaders: headers(TLS_REQUIRED_HEADER),
  })
  notes.requirement = requirement
  notes.inbound = { tls: isTls(tls), ...tls }
  const host = txn.mail_from?.host
  return {
    ...ctx,
    connection: conn,
    transaction: txn,
    tls,
    requirement,
    headers,
    queueId: txn.uuid,
    senderDomain: host ? String(host) : undefined,
  }
}

/** Runs the steps; stops at the first verdict other than continue. */
export async function runSteps(
  m: MessageContext,
  duties: readonly Duty[],
): Promise<{ verdict: Verdict; headers: HeaderEdit[]; decidedBy?: string }> {
  const headers: HeaderEdit[] = []
  for (const duty of duties) {
    if (!duty.message) continue
    const d = await duty.message(m)
    if (d.verdict.action !== 'continue') return { verdict: d.verdict, headers: [], decidedBy: duty.name }
    headers.push(...d.headers)
  }
  return { verdict: CONTINUE, headers }
}

function requiredLevel(m: MessageContext): number | string | undefined {
  if (m.requirement.source === 'requiretls') return 'requiretls'
  return m.requirement.level || undefined
}

/** The data_post hook body for a given list of duties. */
export function dataPostHandler(duties: readonly Duty[]) {
  return async (ctx: DutyContext, next: Next, target: unknown): Promise<void> => {
    const m = messageContext(ctx, target as HarakaConnection)
    const { verdict, headers, decidedBy } = await runSteps(m, duties)
    if (verdict.action === 'continue' || verdict.action === 'accept') applyHeaderEdits(m.transaction, headers)
    if (verdict.action === 'quarantine' || verdict.action === 'discard')
      linksecNotes(m.transaction).action = verdict.action
    logDecision(m.rt, {
      adapter: 'haraka',
      queueId: m.queueId,
      verdict,
      level: requiredLevel(m),
      senderDomain: m.senderDomain,
      extra: decidedBy ? { duty: decidedBy } : undefined,
    })
    next(...harakaReply(verdict))
  }
}

/** The queue/queue_outbound hook body: write the staged header additions, then let the queue plugin run. */
export function queueHandler(_ctx: DutyContext, next: Next, target: unknown): void {
  const txn = (target as HarakaConnection).transaction
  if (txn) flushStagedHeaders(txn)
  next()
}
