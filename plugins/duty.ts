/**
 * A duty is one job of the linksec Haraka plugin (declare, outbound): a set
 * of raw Haraka hooks. What happens at end of message is core/message's
 * pipeline, run at data_post by plugins/message.ts, not a duty's.
 *
 * Adding a duty = one import + one line in the DUTIES list of linksec.ts.
 *
 * Every hook handler and message step runs inside guarded() (guard.ts): a
 * throw or a rejected promise becomes `451 4.3.0` and a count in
 * linksec_internal_errors_total{adapter="haraka",stage}, never an accept.
 */
import type { Enforcement } from '../core/enforce'
import type { Runtime } from '../core/runtime'
import type { HarakaPlugin, Next } from './haraka'

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

export interface HookSpec {
  handler: HookHandler
  /** Haraka priority, -100 (first) .. 100 (last); default 0. */
  priority?: number
}

export interface Duty {
  /** Short, unique, used in method names and as the metrics `stage` label prefix. */
  name: string
  hooks?: Readonly<Record<string, HookSpec>>
  /**
   * The no-downgrade rules (core/enforce/hop.ts `Enforcement`) this duty carries out, e.g.
   * the outbound duty's ['noDowngrade', 'peerLevel']. Without a loaded duty that carries out
   * noDowngrade, levels 3-4 and REQUIRETLS are not declared (plugins/declare.ts).
   */
  performs?: readonly (keyof Enforcement)[]
}
