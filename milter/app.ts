/**
 * Session events -> core -> milter responses. At end of message the app
 * builds the plain MessageFacts (./message.ts), runs the one message
 * pipeline (core/message) and turns its result into milter actions plus one
 * final reply. Every path ends in a catch-all that answers 451 4.3.0: an
 * error never becomes an accept.
 */
import { logDecision } from '../core/decision-log'
import { describeError } from '../core/errors'
import {
  MESSAGE_STEPS,
  runMessage,
  type AdapterProfile,
  type MessageResult,
  type MessageStep,
} from '../core/message'
import type { Runtime } from '../core/runtime'
import { internalError, type HeaderEdit } from '../core/verdict'
import { releaseNow } from './release'
import { messageFacts } from './message'
import type { HandlerNeeds } from './negotiate'
import { INTERNAL_ERROR_REPLY, verdictResponse } from './reply'
import type { EndOfMessageReply, MilterHandler, SessionFacts } from './session'
import { Action } from './wire/codes'
import type { MilterResponse } from './wire/types'

export interface MilterAppOptions {
  /** The message steps (default core/message's MESSAGE_STEPS). */
  steps?: readonly MessageStep[]
  /** Time allowed for all steps of one message; kept below Postfix's milter_content_timeout. */
  deadlineMs?: number
  /** The listener's kind: over a unix socket DATA needs no answer (see milterNeeds). */
  transport?: 'inet' | 'unix'
}

/** Postfix has no per-message TLS requirement: tagged mail is routed by a header (core/message/route.ts). */
export const MILTER_PROFILE: AdapterProfile = { adapter: 'milter', outbound: 'route-header' }

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
export function milterNeeds(
  needsBody: boolean,
  transport: 'inet' | 'unix' = 'inet',
  changesBody = false,
): HandlerNeeds {
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
    // SMFIF_CHGBODY only when signing is on: the sign step replaces the body (SMFIR_REPLBODY).
    actions:
      Action.addHeaders | Action.changeHeaders | Action.quarantine | (changesBody ? Action.changeBody : 0),
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
  const steps = opts.steps ?? MESSAGE_STEPS
  const needsBody = steps.some((p) => p.needsBody)
  // Below the verifier's own deadline plus slack, and below Postfix's 30 s/300 s timeouts.
  const deadlineMs = opts.deadlineMs ?? Math.min(rt.config.verify.deadline_ms + 5000, 25000)
  return {
    needs: milterNeeds(needsBody, opts.transport, rt.config.sign.enabled),
    maxBodyBytes: needsBody ? maxBodyBytes(rt.config) : 0,
    endOfMessage: (facts) => endOfMessage(rt, steps, facts, deadlineMs),
  }
}

/** The body is held up to the larger of what the verifier and the signer take. */
function maxBodyBytes(cfg: Runtime['config']): number {
  return Math.max(cfg.verify.max_message_bytes, cfg.sign.enabled ? cfg.sign.max_message_bytes : 0)
}

async function endOfMessage(
  rt: Runtime,
  steps: readonly MessageStep[],
  facts: SessionFacts,
  deadlineMs: number,
): Promise<EndOfMessageReply> {
  let raw: Buffer | undefined
  try {
    const r = await runMessage(
      rt,
      messageFacts(facts, facts.transaction!, (b) => (raw = b)),
      MILTER_PROFILE,
      {
        steps,
        deadlineMs,
      },
    )
    logDecision(rt, { ...r.decision, extra: { session: facts.id, ...r.decision.extra } })
    const reply = milterReply(r)
    // A large message's joined bytes are freed now (milter/release.ts): not
    // when a step may still be reading them (the deadline passed) or when the
    // new body the reply carries is a view of them.
    if (raw && r.verdict.reason !== 'internal_error' && r.body?.buffer !== raw.buffer) releaseNow(raw)
    return reply
  } catch (e) {
    rt.log.error('milter end of message failed; answering 451', {
      session: facts.id,
      error: describeError(e),
    })
    rt.metrics.internalErrors.inc({ adapter: 'milter', stage: 'end_of_message' })
    // Still one decision line (and count) for the message.
    logDecision(rt, {
      adapter: 'milter',
      queueId: facts.macros.get('i'),
      verdict: internalError(),
      extra: { session: facts.id },
    })
    return { modifications: [], final: INTERNAL_ERROR_REPLY }
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

/** The pipeline's result as milter actions and the final reply. */
function milterReply(r: Pick<MessageResult, 'verdict' | 'headers' | 'body'>): EndOfMessageReply {
  const modifications = headerActions(r.headers)
  // SMFIR_REPLBODY: the new body in chunks under the milter's 64 KB frame limit.
  if (r.body)
    for (let at = 0; at < r.body.length; at += BODY_CHUNK)
      modifications.push({ type: 'replaceBody', chunk: r.body.subarray(at, at + BODY_CHUNK) })
  if (r.verdict.action === 'quarantine')
    modifications.push({ type: 'quarantine', reason: r.verdict.text ?? r.verdict.reason })
  return { modifications, final: verdictResponse(r.verdict) }
}

const BODY_CHUNK = 65535 - 1024
