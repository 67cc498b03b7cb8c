/**
 * The one end-of-message pipeline both adapters call: facts in, one result
 * out. Steps run in order (MESSAGE_STEPS); the first verdict other than
 * continue/accept ends the run. One rule says what is applied under each
 * verdict (appliedEdits): a message that is kept (continue, accept,
 * quarantine) carries every header edit of the steps that ran, so a
 * quarantined or tagged message always has our Authentication-Results and
 * never a forged one; a refused or discarded message gets none. A step that
 * throws, or a run past the deadline, answers 451 4.3.0, never an accept.
 */
import type { Decision } from '../decision-log'
import { requirementLabel, type TaggedOutcome } from '../enforce'
import { describeError, LinksecError } from '../errors'
import { isTls } from '../inbound'
import {
  messageRequirement,
  requiredLevel,
  REQUIREMENT_HEADER,
  TLS_REQUIRED_HEADER,
  type Requirement,
} from '../levels'
import { addressDomain } from '../address'
import { raceDeadline } from '../net/deadline'
import type { LogFields } from '../log'
import type { Runtime } from '../runtime'
import { CONTINUE, internalError, type HeaderEdit, type Verdict } from '../verdict'
import type { MessageFacts } from './facts'
import { inboundLinkStep } from './inbound-link'
import { routeStep } from './route'
import type { AdapterProfile, MessageStep, MessageView, StepDecision } from './step'
import { signStep } from './sign'
import { verifyStep } from './verify'
import { wksStep } from './wks'

/**
 * In order: the inbound link first (a tagged message over plaintext is
 * refused before any lookup); the route step before the signature check, so
 * a message the signature step quarantines (Postfix's hold queue) already
 * carries its route header when an operator releases it, and a message
 * refused for its recipients costs no key lookup. Signing goes last: it
 * rewrites the body, and only a message every other step kept is signed.
 * The Web Key Service step comes right after the link: a message to a
 * submission address is ours to take (core/message/wks.ts), not to route,
 * verify or sign.
 */
export const MESSAGE_STEPS: readonly MessageStep[] = [
  inboundLinkStep,
  wksStep,
  routeStep,
  verifyStep,
  signStep,
]

export interface MessageResult {
  verdict: Verdict
  /** The edits to apply, already chosen by appliedEdits(). */
  headers: HeaderEdit[]
  /** A new body (a signing step), applied like the header edits. */
  body?: Buffer
  requirement: Requirement
  /** The step whose verdict ended the run. */
  decidedBy?: string
  /** The decision line (core/decision-log.ts); the adapter may add its own fields to `extra`. */
  decision: Decision
}

export interface PipelineOptions {
  steps?: readonly MessageStep[]
  /** Time allowed for all steps of one message (the MTA's own timeout is longer). */
  deadlineMs?: number
}

/** Whether a verdict keeps the message (and so its edits). */
export function keepsMessage(v: Verdict): boolean {
  return v.action === 'continue' || v.action === 'accept' || v.action === 'quarantine'
}

/** The one rule: a kept message gets every edit of the steps that ran; a refused one none. */
export function appliedEdits(v: Verdict, edits: HeaderEdit[]): HeaderEdit[] {
  return keepsMessage(v) ? edits : []
}

/** What the message requires of every hop, from its tags and MAIL FROM … REQUIRETLS. */
export function requirementOf(facts: MessageFacts): Requirement {
  return messageRequirement({
    requiretlsParam: facts.requiretls,
    requirementHeaders: facts.headerValues(REQUIREMENT_HEADER),
    tlsRequiredHeaders: facts.headerValues(TLS_REQUIRED_HEADER),
  })
}

/**
 * What the steps see of a message: its facts, its requirement and the
 * adapter's profile. The message bytes are read once for all steps (the
 * verify step and the sign step both read them when signing is on).
 */
export function messageView(
  facts: MessageFacts,
  profile: AdapterProfile,
  requirement = requirementOf(facts),
): MessageView {
  let bytes: Promise<Buffer> | undefined
  const message = () => (bytes ??= facts.message())
  // A plain copy, not Object.create(facts): a fresh prototype per message
  // cost V8 a map transition each time and left the steps' property reads
  // megamorphic.
  return { ...facts, requirement, profile, message }
}

interface Run {
  verdict: Verdict
  headers: HeaderEdit[]
  body?: Buffer
  decidedBy?: string
  log?: LogFields
}

async function runOne(rt: Runtime, step: MessageStep, msg: MessageView): Promise<StepDecision> {
  try {
    return await step.run(msg, rt)
  } catch (e) {
    rt.log.error('message step failed; answering 451', { step: step.name, error: describeError(e) })
    rt.metrics.internalErrors.inc({ adapter: msg.profile.adapter, stage: step.name })
    return { verdict: internalError(`${step.name}_error`), headers: [] }
  }
}

async function runSteps(rt: Runtime, steps: readonly MessageStep[], msg: MessageView): Promise<Run> {
  const headers: HeaderEdit[] = []
  let body: Buffer | undefined
  let log: LogFields | undefined
  for (const step of steps) {
    const d = await runOne(rt, step, msg)
    headers.push(...d.headers)
    if (d.body) body = d.body
    if (d.log) log = { ...log, ...d.log }
    if (d.verdict.action !== 'continue' && d.verdict.action !== 'accept')
      return { verdict: d.verdict, headers, body, decidedBy: step.name, log }
  }
  return { verdict: CONTINUE, headers, body, log }
}

/**
 * Runs the steps on one message and says what to do with it. A step's error
 * or the deadline is a 451 verdict; facts the adapter cannot even read (its
 * MTA's objects failing) throw, into the adapter's own catch-all.
 */
export async function runMessage(
  rt: Runtime,
  facts: MessageFacts,
  profile: AdapterProfile,
  opts: PipelineOptions = {},
): Promise<MessageResult> {
  const requirement = requirementOf(facts)
  let run: Run
  try {
    const work = runSteps(rt, opts.steps ?? MESSAGE_STEPS, messageView(facts, profile, requirement))
    run =
      opts.deadlineMs === undefined
        ? await work
        : await raceDeadline(work, opts.deadlineMs, () => deadlineError(opts.deadlineMs!))
  } catch (e) {
    rt.log.error('end of message failed; answering 451', { queue_id: facts.queueId, error: describeError(e) })
    rt.metrics.internalErrors.inc({ adapter: profile.adapter, stage: 'end_of_message' })
    run = { verdict: internalError(), headers: [] }
  }
  const req = requirement
  count(rt, profile, facts, req, run.verdict)
  return {
    verdict: run.verdict,
    headers: appliedEdits(run.verdict, run.headers),
    body: keepsMessage(run.verdict) ? run.body : undefined,
    requirement: req,
    decidedBy: run.decidedBy,
    decision: {
      adapter: profile.adapter,
      queueId: facts.queueId,
      verdict: run.verdict,
      level: requiredLevel(req),
      senderDomain: addressDomain(facts.sender),
      extra: { tls: facts.tls.version ?? 'none', step: run.decidedBy, ...run.log },
    },
  }
}

function deadlineError(ms: number): Error {
  return new LinksecError('LINKSEC_MESSAGE_DEADLINE', `the message's checks took longer than ${ms} ms`)
}

/** Per-message counts besides linksec_messages_total (which logDecision counts). */
function count(
  rt: Runtime,
  profile: AdapterProfile,
  facts: MessageFacts,
  req: Requirement,
  v: Verdict,
): void {
  try {
    rt.metrics.inboundTls.inc({ adapter: profile.adapter, tls: isTls(facts.tls) ? 'yes' : 'no' })
    if (req.level > 0 || req.source === 'requiretls')
      rt.metrics.taggedMessages.inc({ level: requirementLabel(req), outcome: taggedOutcome(v) })
  } catch {
    // A metric failure must never change a mail decision.
  }
}

/** The end-of-message outcome of a tagged message (linksec_tagged_messages_total). */
function taggedOutcome(v: Verdict): TaggedOutcome {
  if (v.reason === 'tagged_plaintext') return 'rejected_plaintext'
  if (v.reason === 'recipient_level_low') return 'rejected_recipients'
  if (v.reason === 'recipient_lookup_failed') return 'tempfail_recipients'
  if (v.action === 'continue' || v.action === 'accept') return 'accepted'
  return v.action
}
