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
import { requirementLabel, type EnforceDuties } from './enforce/hop'

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

/** The duties this server performs, from [enforce]. */
export function dutiesFromConfig(config: LinksecConfig): EnforceDuties {
  return {
    noDowngrade: config.enforce.enabled,
    peerLevel: config.enforce.enabled && config.enforce.peer_level,
  }
}
export * from './enforce/policy'
