/**
 * The no-downgrade rule at end of message:
 * 1. a tagged message with a recipient domain known to fall below its level
 *    is refused 550 5.7.10, naming the domains, before anything is queued; a
 *    domain nothing is known of is accepted (core/enforce/recipients.ts).
 *    Mail the MTA delivers locally (Haraka: not relaying) has no next hop to
 *    check;
 * 2. for Postfix (profile `route-header`), a tagged message gets the routing
 *    header ([enforce] route_header, `encrypt; level=N` or `secure; level=N`),
 *    which the shipped `milter_header_checks` turns into a FILTER to a
 *    transport whose TLS level never falls back to plaintext
 *    (examples/postfix/master.cf). Haraka's outbound duty checks each hop
 *    itself (plugins/outbound.ts).
 * For Postfix, route headers that arrive with the message are removed first:
 * only ours may speak (milter_header_checks only sees milter-added headers,
 * so a forged one could never route, but it could mislead a reader). Haraka
 * routes nothing by it and leaves a previous hop's route header in place.
 */
import {
  checkRecipients,
  countTagged,
  enforcementOf,
  formatRouteHeader,
  peerPolicyOf,
  recipientDomains,
  routeFor,
  type PeerPolicy,
} from '../enforce'
import { isLinksecError, LinksecError } from '../errors'
import { policyResolverFor } from '../policy'
import type { Runtime } from '../runtime'
import { CONTINUE, type HeaderEdit, type Verdict } from '../verdict'
import { messageStep, type MessageView } from './step'

function forgedRouteHeaders(msg: MessageView, name: string): HeaderEdit[] {
  const n = msg.headerValues(name).length
  return Array.from({ length: n }, (_, i): HeaderEdit => ({ op: 'delete', name, index: n - i }))
}

/** What the policy engine knows of a recipient domain; an address literal names none. */
export async function recipientPolicy(rt: Runtime, domain: string): Promise<PeerPolicy> {
  try {
    return peerPolicyOf(await policyResolverFor(rt).resolve(domain))
  } catch (e) {
    // An address literal (user@[192.0.2.1]) names no domain: nothing can be declared for it.
    if (isLinksecError(e) && e.code === 'LINKSEC_BAD_DOMAIN')
      return { domain, tlsRequired: false, certificateRequired: false }
    throw e
  }
}

/**
 * Postfix cannot read a peer's EHLO `LINKSEC` keyword, so for it this check
 * is the only place a domain's declared level meets the tag: a lookup that
 * failed with nothing valid remembered (uncertain, no level) might have shown
 * the domain below the tag, and throws, which checkRecipients turns into
 * 451 4.4.3 (the sender's server retries), never an accept.
 */
function strict(rt: Runtime, lookup: (d: string) => Promise<PeerPolicy>) {
  return async (domain: string): Promise<PeerPolicy> => {
    const policy = await lookup(domain)
    if (policy.uncertain && policy.level === undefined) {
      rt.log.warn('recipient domain policy lookup failed', { domain })
      throw new LinksecError('LINKSEC_POLICY_UNCERTAIN', `the policy lookup for ${domain} failed`)
    }
    return policy
  }
}

async function checkWeakRecipients(msg: MessageView, rt: Runtime): Promise<Verdict> {
  if (!rt.config.inbound.reject_weak_recipients || msg.submitter.relaying === false) return CONTINUE
  const lookup = msg.profile.peerPolicy ?? ((d: string) => recipientPolicy(rt, d))
  return checkRecipients(
    msg.requirement,
    recipientDomains(msg.recipients),
    msg.profile.outbound === 'route-header' ? strict(rt, lookup) : lookup,
    // The EHLO at delivery (Haraka) or the strict transport (Postfix) still decides for a domain nothing is known of.
    { enforcement: enforcementOf(rt.config), unknown: 'accept' },
  )
}

export const routeStep = messageStep('route', async (msg, rt) => {
  const name = rt.config.enforce.route_header
  const byHeader = msg.profile.outbound === 'route-header'
  const headers = byHeader ? forgedRouteHeaders(msg, name) : []
  const verdict = await checkWeakRecipients(msg, rt)
  if (verdict.action !== 'continue') return { verdict, headers }
  const route = byHeader ? routeFor(msg.requirement, enforcementOf(rt.config)) : undefined
  if (route) {
    headers.push({ op: 'append', name, value: formatRouteHeader(route, msg.requirement) })
    countTagged(rt, msg.requirement, 'routed')
  }
  return { verdict: CONTINUE, headers }
})
