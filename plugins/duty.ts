/**
 * A duty is one job of the linksec Haraka plugin (declare, inbound, later
 * verify and outbound). It contributes raw Haraka hooks and/or one step of
 * the end-of-message pipeline that plugins/linksec.ts runs at data_post.
 *
 * Adding a duty = one import + one line in the DUTIES list of linksec.ts:
 *
 *   import { verifyDuty } from './verify'
 *   export const DUTIES: readonly Duty[] = [declareDuty, inboundDuty, verifyDuty]
 *
 * Every hook handler and message step runs inside guarded() (guard.ts): a
 * throw or a rejected promise becomes `451 4.3.0` and a count in
 * linksec_internal_errors_total{adapter="haraka",stage}, never an accept.
 */
import type { HeaderEdit, MessageDecision } from '../core/verdict'
import type { Requirement } from '../core/levels'
import type { TlsFacts } from '../core/inbound'
import type { Runtime } from '../core/runtime'
import type { HarakaConnection, HarakaPlugin, HarakaTransaction, Next } from './haraka'

export interface DutyContext {
  plugin: HarakaPlugin
  /** The configuration in force for this call (reloads swap it between calls). */
  rt: Runtime
}

/**
 * A raw Haraka hook. `target` is the Connection for SMTP hooks and the
 * HMailItem for outbound ones (get_mx, send_email, bounce, …); `params` is
 * Haraka's third argument (e.g. `[from, params]` at mail). Call `next` once.
 */
export type HookHandler = (
  ctx: DutyContext,
  next: Next,
  target: unknown,
  params?: unknown,
) => void | Promise<void>

/** What every end-of-message step sees; read-only views of the message. */
export interface MessageContext extends DutyContext {
  connection: HarakaConnection
  transaction: HarakaTransaction
  /** The inbound link, from connection.tls. */
  tls: TlsFacts
  /** What the message requires (its tags and MAIL FROM … REQUIRETLS). */
  requirement: Requirement
  /** Unfolded values of a header field, in message order. */
  headers(name: string): readonly string[]
  /** Haraka's transaction uuid (the queue id operators grep for). */
  queueId: string
  senderDomain?: string
}

/** One pipeline step: a verdict (continue to go on) and header edits to apply if accepted. */
export type MessageStep = (m: MessageContext) => MessageDecision | Promise<MessageDecision>

export interface HookSpec {
  handler: HookHandler
  /** Haraka priority, -100 (first) .. 100 (last); default 0. */
  priority?: number
}

export interface Duty {
  /** Short, unique, used in method names and as the metrics `stage` label prefix. */
  name: string
  hooks?: Readonly<Record<string, HookSpec>>
  message?: MessageStep
  /**
   * Level duties this code actually performs (DESIGN §2), e.g. the outbound
   * duty's ['no_downgrade', 'peer_level']. Start-up warns when the
   * configuration declares a level no loaded duty backs.
   */
  performs?: readonly ('no_downgrade' | 'peer_level')[]
}

export type { HeaderEdit, MessageDecision }
