/**
 * Session events -> core -> milter responses. At end of message the app
 * builds the plain InboundMessage, runs the message policies in order, and
 * turns their header edits and verdict into milter actions plus one final
 * reply. Every path ends in a catch-all that answers 451 4.3.0: an error in
 * a policy never becomes an accept.
 */
import { logDecision } from '../core/decision-log'
import { requirementLabel } from '../core/enforce'
import { describeError, LinksecError } from '../core/errors'
import type { Requirement } from '../core/levels'
import type { Runtime } from '../core/runtime'
import { CONTINUE, internalError, type HeaderEdit, type MessageDecision, type Verdict } from '../core/verdict'
import { inboundMessage, type InboundMessage, type MessagePolicy } from './message'
import type { HandlerNeeds } from './negotiate'
import { MESSAGE_POLICIES } from './policies'
import { INTERNAL_ERROR_REPLY, verdictResponse } from './reply'
import type { EndOfMessageReply, MilterHandler, SessionFacts } from './session'
import { Action } from './wire/codes'
import type { MilterResponse } from './wire/types'

export type { InboundMessage, MessagePolicy, MessagePolicyFn } from './message'
export { messagePolicy } from './message'

export interface MilterAppOptions {
  policies?: readonly MessagePolicy[]
  /** Time allowed for all policies of one message; kept below Postfix's milter_content_timeout. */
  deadlineMs?: number
  /** The listener's kind: over a unix socket DATA needs no answer (see milterNeeds). */
  transport?: 'inet' | 'unix'
}

/**
 * What linksec asks of Postfix: events it only observes get no reply (Postfix
 * then batches them into one write), unneeded ones are switched off. DATA is
 * the exception: Postfix hands the milter socket from smtpd to cleanup there,
 * flushing what smtpd buffered; unanswered, that small write leaves cleanup's
 * first write waiting ~40 ms for our delayed ACK (Nagle). Answering DATA
 * carries the ACK back at once (measured: 22 -> 400+ msg/s on one session).
 * A unix socket has no Nagle, so there DATA goes unanswered too: one round
 * trip less per message.
 */
export function milterNeeds(needsBody: boolean, transport: 'inet' | 'unix' = 'inet'): HandlerNeeds {
  return {
    events: {
      connect: 'observe',
      helo: 'observe',
      mail: 'observe',
      rcpt: 'observe',
      data: transport === 'unix' ? 'observe' : 'acknowledge',
      header: 'observe',
      eoh: 'none',
      body: needsBody ? 'observe' : 'none',
      unknown: 'none',
    },
    actions: Action.addHeaders | Action.changeHeaders | Action.quarantine,
    // Postfix sends the TLS macros with HELO only; a client that skips EHLO after
    // STARTTLS would look like plain SMTP. Ask for them with MAIL too (Postfix's
    // default MAIL list plus the TLS facts), so the link is judged right either way.
    macros: { mail: `${POSTFIX_MAIL_MACROS} ${TLS_MACROS}` },
  }
}

/** Postfix 3.7's default milter_mail_macros, kept when we replace the list. */
const POSTFIX_MAIL_MACROS = 'i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}'
const TLS_MACROS = '{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}'

export function createMilterApp(rt: Runtime, opts: MilterAppOptions = {}): MilterHandler {
  const policies = opts.policies ?? MESSAGE_POLICIES
  const needsBody = policies.some((p) => p.needsBody)
  // Below the verifier's own deadline plus slack, and below Postfix's 30 s/300 s timeouts.
  const deadlineMs = opts.deadlineMs ?? Math.min(rt.config.verify.deadline_ms + 5000, 25000)
  return {
    needs: milterNeeds(needsBody, opts.transport),
    maxBodyBytes: needsBody ? rt.config.verify.max_message_bytes : 0,
    endOfMessage: (facts) => endOfMessage(rt, policies, facts, deadlineMs),
  }
}

async function endOfMessage(
  rt: Runtime,
  policies: readonly MessagePolicy[],
  facts: SessionFacts,
  deadlineMs: number,
): Promise<EndOfMessageReply> {
  let msg: InboundMessage | undefined
  try {
    msg = inboundMessage(facts, facts.transaction!)
    const { decision, decidedBy } = await withDeadline(runNamedPolicies(rt, policies, msg), deadlineMs)
    countMessage(rt, msg, decision.verdict)
    logMessage(rt, facts, msg, decision.verdict, decidedBy)
    return milterReply(decision)
  } catch (e) {
    rt.log.error('milter end of message failed; answering 451', {
      session: facts.id,
      error: describeError(e),
    })
    rt.metrics.internalErrors.inc({ adapter: 'milter', stage: 'end_of_message' })
    logMessage(rt, facts, msg, internalError(), undefined)
    return { modifications: [], final: INTERNAL_ERROR_REPLY }
  }
}

/** Runs policies in order; the first verdict that is not continue/accept ends the run. */
export async function runPolicies(
  rt: Runtime,
  policies: readonly MessagePolicy[],
  msg: InboundMessage,
): Promise<MessageDecision> {
  return (await runNamedPolicies(rt, policies, msg)).decision
}

/** runPolicies, also naming the policy whose verdict ended the run (for the decision line). */
async function runNamedPolicies(
  rt: Runtime,
  policies: readonly MessagePolicy[],
  msg: InboundMessage,
): Promise<{ decision: MessageDecision; decidedBy?: string }> {
  const headers: HeaderEdit[] = []
  for (const policy of policies) {
    const d = await runOne(rt, policy, msg)
    headers.push(...d.headers)
    if (d.verdict.action !== 'continue' && d.verdict.action !== 'accept')
      return { decision: { verdict: d.verdict, headers }, decidedBy: policy.name }
  }
  return { decision: { verdict: CONTINUE, headers } }
}

async function runOne(rt: Runtime, policy: MessagePolicy, msg: InboundMessage): Promise<MessageDecision> {
  try {
    return await policy.run(msg, rt)
  } catch (e) {
    rt.log.error('message policy failed; answering 451', { policy: policy.name, error: describeError(e) })
    rt.metrics.internalErrors.inc({ adapter: 'milter', stage: policy.name })
    return { verdict: internalError(`${policy.name}_error`), headers: [] }
  }
}

/**
 * Header edits as milter actions: deletions first, highest index first (so
 * indexes stay valid whatever the MTA renumbers, and before our own field of
 * the same name exists), then insertions at the top, then appends.
 */
export function headerActions(edits: readonly HeaderEdit[]): MilterResponse[] {
  const deletes = edits.flatMap((e) => (e.op === 'delete' ? [e] : [])).sort((a, b) => b.index - a.index)
  const prepends = edits.flatMap((e) => (e.op === 'prepend' ? [e] : []))
  const appends = edits.flatMap((e) => (e.op === 'append' ? [e] : []))
  return [
    ...deletes.map((e): MilterResponse => ({
      type: 'changeHeader',
      index: e.index,
      name: e.name,
      value: '',
    })),
    // Each insert at index 0 lands above the previous one: insert in reverse to keep the order.
    ...prepends
      .reverse()
      .map((e): MilterResponse => ({ type: 'insertHeader', index: 0, name: e.name, value: e.value })),
    ...appends.map((e): MilterResponse => ({ type: 'addHeader', name: e.name, value: e.value })),
  ]
}

export function milterReply(d: MessageDecision): EndOfMessageReply {
  const modifications = headerActions(d.headers)
  if (d.verdict.action === 'quarantine')
    modifications.push({ type: 'quarantine', reason: d.verdict.text ?? d.verdict.reason })
  return { modifications, final: verdictResponse(d.verdict) }
}

/** Per-message counts besides linksec_messages_total (which logDecision counts). */
function countMessage(rt: Runtime, msg: InboundMessage, v: Verdict): void {
  const m = rt.metrics
  m.inboundTls.inc({ adapter: 'milter', tls: msg.tls.version || msg.tls.cipher ? 'yes' : 'no' })
  if (msg.requirement.level > 0 || msg.requirement.source === 'requiretls')
    m.taggedMessages.inc({ level: requirementLabel(msg.requirement), outcome: taggedOutcome(v) })
}

/** The outcome label, named as the Haraka adapter names the same end-of-message refusals. */
function taggedOutcome(v: Verdict): string {
  if (v.reason === 'tagged_plaintext') return 'rejected_plaintext'
  if (v.reason === 'recipient_level_low') return 'rejected_recipients'
  if (v.reason === 'recipient_lookup_failed') return 'tempfail_recipients'
  if (v.action === 'continue' || v.action === 'accept') return 'accepted'
  return v.action
}

/**
 * One decision line per message, the same shape as the Haraka adapter's
 * (core/decision-log.ts), which also counts linksec_messages_total: so the
 * line and the metric can never disagree.
 */
function logMessage(
  rt: Runtime,
  facts: SessionFacts,
  msg: InboundMessage | undefined,
  v: Verdict,
  decidedBy: string | undefined,
): void {
  logDecision(rt, {
    adapter: 'milter',
    queueId: msg?.queueId ?? facts.macros.get('i'),
    verdict: v,
    level: msg ? requiredLevel(msg.requirement) : undefined,
    senderDomain: msg ? domainOf(msg.sender) : undefined,
    extra: {
      session: facts.id,
      tls: msg ? (msg.tls.version ?? 'none') : undefined,
      policy: decidedBy,
    },
  })
}

function requiredLevel(req: Requirement): number | string | undefined {
  if (req.source === 'requiretls') return 'requiretls'
  return req.level || undefined
}

/** `<alice@Example.org>` -> `example.org`; the null sender `<>` has none. */
export function domainOf(sender: string): string | undefined {
  const at = sender.lastIndexOf('@')
  if (at < 0) return undefined
  const d = sender
    .slice(at + 1)
    .replace(/>.*$/, '')
    .trim()
    .toLowerCase()
  return d || undefined
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new LinksecError('LINKSEC_MILTER_DEADLINE', `message policies took longer than ${ms} ms`)),
      ms,
    )
  })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}
