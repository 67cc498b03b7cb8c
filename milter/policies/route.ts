/**
 * The milter side of the no-downgrade rule (issue 4 §3-4, DESIGN §3
 * "Outbound (Postfix)"), at end of message:
 * 1. a tagged message with a recipient domain known to fall below its level
 *    is rejected 550 5.7.10, naming the domains (before Postfix queues it);
 *    a domain nothing is known of is accepted (core/enforce/recipients.ts);
 * 2. a tagged message gets the routing header ([enforce] route_header,
 *    `encrypt; level=N` or `secure; level=N`), which the shipped
 *    `milter_header_checks` turns into `FILTER linksec-encrypt:` or
 *    `FILTER linksec-secure:` — Postfix transports whose TLS level never
 *    falls back to plaintext (examples/postfix/master.cf). Postfix defers
 *    what they cannot deliver and bounces it to the sender when
 *    `maximal_queue_lifetime` runs out.
 * Route headers that arrive with the message are removed first: only ours
 * may speak (Postfix's milter_header_checks only sees milter-added headers,
 * so a forged one could never route, but it could mislead a reader).
 */
import {
  checkRecipients,
  countTagged,
  dutiesFromConfig,
  formatRouteHeader,
  peerPolicyOf,
  recipientDomains,
  routeFor,
  type PeerPolicy,
} from '../../core/enforce'
import { isLinksecError, LinksecError } from '../../core/errors'
import { policyResolverFor, type DomainPolicy } from '../../core/policy'
import type { Runtime } from '../../core/runtime'
import { CONTINUE, type HeaderEdit, type Verdict } from '../../core/verdict'
import { headerValues, messagePolicy, type InboundMessage } from '../message'

function forgedRouteHeaders(msg: InboundMessage, name: string): HeaderEdit[] {
  const n = headerValues(msg.headers, name).length
  // Highest index first, as milter CHGHEADER indexes shift.
  return Array.from({ length: n }, (_, i): HeaderEdit => ({ op: 'delete', name, index: n - i }))
}

/**
 * What the milter knows of a recipient domain. Postfix cannot read a peer's
 * EHLO `LINKSEC` keyword, so this end-of-message check is the only place
 * the Postfix side compares a domain's declared level with the tag. A lookup
 * that failed with nothing valid remembered ("uncertain", no level) might
 * have shown the domain below the tag: it throws, which checkRecipients
 * turns into 451 4.4.3 (the sender's server retries), never an accept.
 */
export async function recipientPolicy(rt: Runtime, domain: string): Promise<PeerPolicy> {
  let found: DomainPolicy
  try {
    found = await policyResolverFor(rt).resolve(domain)
  } catch (e) {
    // An address literal (user@[192.0.2.1]) names no domain: nothing can be declared for it.
    if (isLinksecError(e) && e.code === 'LINKSEC_BAD_DOMAIN')
      return { domain, tlsRequired: false, certificateRequired: false }
    throw e
  }
  const policy = peerPolicyOf(found)
  if (policy.uncertain && policy.level === undefined) {
    const failed = found.sources.filter((s) => s.outcome === 'error').map((s) => `${s.source}: ${s.reason}`)
    rt.log.warn('recipient domain policy lookup failed', { domain, failed })
    throw new LinksecError('LINKSEC_POLICY_UNCERTAIN', `the policy lookup for ${domain} failed`)
  }
  return policy
}

async function checkWeakRecipients(msg: InboundMessage, rt: Runtime): Promise<Verdict> {
  if (!rt.config.inbound.reject_weak_recipients) return CONTINUE
  return checkRecipients(
    msg.requirement,
    recipientDomains(msg.recipients.map((r) => r.address)),
    (d) => recipientPolicy(rt, d),
    { duties: dutiesFromConfig(rt.config), unknown: 'accept' },
  )
}

export const routePolicy = messagePolicy('route', async (msg, rt) => {
  const name = rt.config.enforce.route_header
  const headers = forgedRouteHeaders(msg, name)
  const verdict = await checkWeakRecipients(msg, rt)
  if (verdict.action !== 'continue') return { verdict, headers }
  const route = routeFor(msg.requirement, dutiesFromConfig(rt.config))
  if (route) {
    headers.push({ op: 'append', name, value: formatRouteHeader(route, msg.requirement) })
    countTagged(rt, msg.requirement, 'routed')
  }
  return { verdict: CONTINUE, headers }
})
