/**
 * End-of-message check (docs/architecture.md §3.2, route): a tagged message with a recipient whose
 * domain is known to fall below the required level is rejected 550 5.7.10,
 * naming the domains, so the sender learns before anything is queued.
 *
 * Decisions (documented in README):
 * - a domain nobody has declared anything for is "unknown" and accepted
 *   here (`unknown: 'accept'`, both adapters): Haraka checks the peer's EHLO
 *   at delivery; Postfix cannot read EHLO keywords, so there the strict
 *   transport (TLS, and a verified certificate for N = 4) is all that is
 *   checked later. `unknown: 'reject'` exists for an operator who wants
 *   Postfix to accept only declared domains;
 * - a lookup that fails (DNS timeout, ...) gives 451 4.4.3: the level could
 *   not be known now, the sender's server tries again (never an accept we
 *   cannot stand behind, docs/architecture.md §6.5);
 * - a lookup where only some sources failed is judged on what it found,
 *   marked uncertain: a weak level it could not rule out gives 451 4.4.3, not
 *   a 550. With nothing declared it is "unknown" like any other domain, so
 *   `unknown: 'accept'` accepts it (Haraka still checks the hop at delivery) and
 *   `unknown: 'reject'` answers 451. For Postfix the route step's lookup
 *   (`strict` in core/message/route.ts) throws in that case instead, so
 *   Postfix, which cannot check the hop's declaration later, answers 451 4.4.3.
 */
import { addressDomain } from '../address'
import type { Requirement } from '../levels'
import { CONTINUE, reject, tempfail, type Verdict } from '../verdict'
import { describeRequirement, isEnforced, type Enforcement, type PeerPolicy } from './hop'

export type PolicyLookup = (domain: string) => Promise<PeerPolicy>

export interface RecipientCheckOptions {
  enforcement: Enforcement
  /** What a domain with no known declaration gets. */
  unknown: 'accept' | 'reject'
}

interface DomainFinding {
  domain: string
  /** Declared level, or undefined when nothing is known. */
  level?: number
  failed?: boolean
  /** A source that could have raised the level failed. */
  uncertain?: boolean
}

/** The recipient domains of a message, lower-cased, without duplicates, in first-seen order. */
export function recipientDomains(addresses: readonly string[]): string[] {
  const out = new Set<string>()
  for (const a of addresses) {
    const d = addressDomain(a)
    if (d) out.add(d)
  }
  return [...out]
}

async function lookupAll(domains: readonly string[], lookup: PolicyLookup): Promise<DomainFinding[]> {
  return Promise.all(
    domains.map(async (domain): Promise<DomainFinding> => {
      try {
        const p = await lookup(domain)
        return { domain, level: p.level, uncertain: p.uncertain }
      } catch {
        return { domain, failed: true }
      }
    }),
  )
}

function isWeak(f: DomainFinding, required: number, opts: RecipientCheckOptions): boolean {
  if (f.failed) return false
  if (f.level === undefined) return opts.unknown === 'reject'
  return f.level < required
}

/** The level a recipient domain must declare for this message (REQUIRETLS: 3, docs/architecture.md §6.3). */
function neededLevel(req: Requirement, enforcement: Enforcement): number {
  if (enforcement.peerLevel) return req.level
  // A level-3 server does not check peer levels, except what REQUIRETLS obliges.
  return req.source === 'requiretls' ? 3 : 0
}

export async function checkRecipients(
  req: Requirement,
  domains: readonly string[],
  lookup: PolicyLookup,
  opts: RecipientCheckOptions,
): Promise<Verdict> {
  if (!isEnforced(req, opts.enforcement) || domains.length === 0) return CONTINUE
  const needed = neededLevel(req, opts.enforcement)
  if (needed === 0) return CONTINUE
  const findings = await lookupAll(domains, lookup)
  const weak = findings.filter((f) => isWeak(f, needed, opts))
  const sure = weak.filter((f) => !f.uncertain)
  if (sure.length > 0) return weakVerdict(req, needed, sure)
  // Weak only because a lookup failed: the sender's server should try again.
  const failed = findings.filter((f) => f.failed || (f.uncertain && weak.includes(f))).map((f) => f.domain)
  if (failed.length > 0)
    return tempfail(
      451,
      '4.4.3',
      `could not look up the link-security level of ${failed.join(', ')}; please try again later`,
      'recipient_lookup_failed',
    )
  return CONTINUE
}

function weakVerdict(req: Requirement, needed: number, weak: DomainFinding[]): Verdict {
  const list = weak.map(
    (f) => `${f.domain} (${f.level === undefined ? 'none declared' : `level ${f.level}`})`,
  )
  const plural = weak.length > 1 ? 'these recipient domains do' : 'this recipient domain does'
  return reject(
    550,
    '5.7.10',
    `this message is tagged ${describeRequirement(req)} but ${plural} not declare link-security level ${needed}: ` +
      `${list.join(', ')}; remove those recipients or send the message without the tag`,
    'recipient_level_low',
  )
}
