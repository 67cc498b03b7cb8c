/**
 * No-downgrade decisions (docs/architecture.md §6.3): (requirement, link facts, peer policy)
 * -> verdict. Both adapters use these: the Haraka outbound plugin decides
 * each delivery attempt with decideHop; both check recipient domains at end
 * of message with checkRecipients; the milter routes tagged mail to a strict
 * Postfix transport with routeFor. Everything here is pure except
 * countTagged, which only counts.
 */
import type { Requirement } from './levels'
import type { Runtime } from './runtime'
import type { LinksecConfig } from './config'
import { requirementLabel, type Enforcement } from './enforce/hop'

export * from './enforce/hop'
export * from './enforce/recipients'
export * from './enforce/route'
export * from './enforce/fallback'
export * from './enforce/dsn'

/**
 * Outcomes counted in linksec_tagged_messages_total{level,outcome}:
 * delivered_tls, delivered_plaintext (TLS-Required: No), bounced, deferred
 * (a retry within the window), fallback_delivered, rejected_recipients,
 * tempfail_recipients, rejected_plaintext, routed (milter marked it), and
 * the end-of-message verdict of every other tagged message (accepted,
 * quarantine, tempfail, reject, discard; core/message/pipeline.ts).
 */
export type TaggedOutcome =
  | 'delivered_tls'
  | 'delivered_plaintext'
  | 'bounced'
  | 'deferred'
  | 'fallback_delivered'
  | 'rejected_recipients'
  | 'tempfail_recipients'
  | 'rejected_plaintext'
  | 'routed'
  | 'accepted'
  | 'quarantine'
  | 'tempfail'
  | 'reject'
  | 'discard'

/** Counts a tagged message's outcome; untagged messages are not counted here. */
export function countTagged(rt: Runtime, req: Requirement, outcome: TaggedOutcome): void {
  if (req.level === 0 && req.source !== 'requiretls') return
  try {
    rt.metrics.taggedMessages.inc({ level: requirementLabel(req), outcome })
  } catch {
    // A metric failure must never change a mail decision.
  }
}

const ENFORCEMENT = new WeakMap<LinksecConfig['enforce'], Enforcement>()

/**
 * The no-downgrade rules this configuration enforces ([enforce]), built once
 * per configuration and read by every adapter and step: the recipient check
 * and the Postfix route (core/message/route.ts), Haraka's hop decisions
 * (plugins/outbound.ts) and the level this server declares (core/own-level.ts).
 * peer_level only counts with enabled: level 4 builds on level 3.
 */
export function enforcementOf(config: LinksecConfig): Enforcement {
  let e = ENFORCEMENT.get(config.enforce)
  if (!e) {
    e = Object.freeze({
      noDowngrade: config.enforce.enabled,
      peerLevel: config.enforce.enabled && config.enforce.peer_level,
    })
    ENFORCEMENT.set(config.enforce, e)
  }
  return e
}
export * from './enforce/policy'
