/**
 * The shape of one end-of-message step and what it sees: the adapter's facts,
 * what the message requires of every hop, and the adapter's profile (the few
 * things that differ between Postfix and Haraka by design, each said where
 * it is used).
 */
import type { PeerPolicy } from '../enforce'
import type { Requirement } from '../levels'
import type { LogFields } from '../log'
import type { Adapter } from '../metrics'
import type { Runtime } from '../runtime'
import type { MessageDecision } from '../verdict'
import type { MessageFacts } from './facts'

export interface AdapterProfile {
  readonly adapter: Adapter
  /**
   * How tagged mail stays on TLS once accepted. `route-header`: Postfix has no
   * per-message TLS requirement, so the route step marks the message for a
   * strict transport (core/enforce/route.ts) and, as Postfix cannot check a
   * hop's declaration later, a recipient lookup that failed answers 451.
   * `per-hop`: Haraka's outbound duty checks every delivery attempt itself.
   */
  readonly outbound: 'route-header' | 'per-hop'
  /** What a recipient domain declares; default the engine's policy resolver. */
  readonly peerPolicy?: (domain: string) => Promise<PeerPolicy>
}

/** What every step reads. */
export interface MessageView extends MessageFacts {
  /** What the message's tags ask of every hop (Link-Security-Required, REQUIRETLS). */
  readonly requirement: Requirement
  readonly profile: AdapterProfile
}

/** A step's answer: a verdict (continue to go on), header edits, and a new body if it rewrote one. */
export interface StepDecision extends MessageDecision {
  body?: Buffer
  /** Fields for the message's decision line (e.g. the sign step's `sign` outcome). */
  log?: LogFields
}

export interface MessageStep {
  /** For logs (the decision line's `step`) and the internal-error metric's stage label. */
  readonly name: string
  /** True if the step reads facts.message() (the milter then asks Postfix for the body). */
  readonly needsBody: boolean
  run(msg: MessageView, rt: Runtime): Promise<StepDecision> | StepDecision
}

export function messageStep(
  name: string,
  run: MessageStep['run'],
  opts: { needsBody?: boolean } = {},
): MessageStep {
  return { name, run, needsBody: opts.needsBody ?? false }
}
