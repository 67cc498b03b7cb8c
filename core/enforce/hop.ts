/**
 * The no-downgrade rule for one delivery attempt (docs/architecture.md §6.3): may this
 * message go to this hop, over this link? Pure: the adapter gathers the facts
 * of the session (EHLO lines, TLS state, certificate check) and the peer's
 * policy, and turns the answer into a delivery, a bounce or a retry.
 */
import type { Level, Requirement } from '../levels'

/** What the adapter saw of one SMTP session with the next hop. */
export interface LinkFacts {
  /** The hop as people know it, e.g. "mx.example.net [192.0.2.1]:25" — named in the DSN. */
  hop: string
  /** The session is under TLS now (before MAIL FROM). */
  tls: boolean
  /** STARTTLS was offered in the plaintext EHLO. */
  offersStartTls: boolean
  /** Why the TLS handshake failed, when it was attempted and failed. */
  tlsError?: string
  /** The peer certificate verified (chain and name: WebPKI, MTA-STS or DANE). */
  certVerified: boolean
  /** Why the certificate did not verify. */
  certError?: string
  /** `LINKSEC <N>` in this session's EHLO (the one after STARTTLS when under TLS). */
  peerEhloDeclaration?: Level
  /** REQUIRETLS in this session's EHLO after STARTTLS (RFC 8689 §4.2). */
  offersRequireTls: boolean
  /** The hop's name matches the destination's MTA-STS/static `mxs` (undefined: no list applies). */
  mxMatchesPolicy?: boolean
}

/** What the policy engine believes of the destination domain. */
export interface PeerPolicy {
  domain: string
  /** Declared level from DNS, the static list or a learned EHLO, within its ttl; undefined = none known. */
  level?: Level
  /** Where that level came from (txt, static, learned, mta_sts, ...), for the DSN text. */
  source?: string
  /** The domain's policy forbids plaintext (static enforce, MTA-STS enforce, DANE): level 1 keeps it. */
  tlsRequired: boolean
  /** The domain's policy requires a verified certificate (MTA-STS/static enforce, DANE). */
  certificateRequired: boolean
  /**
   * A source that could have raised the level failed and nothing valid is
   * remembered: a refusal based on this policy alone is only a retry.
   */
  uncertain?: boolean
}

/** The no-downgrade rules in force (from [enforce] by enforcementOf, core/enforce.ts). */
export interface Enforcement {
  /** Level 3: bounce tagged mail rather than relay it over a link that is not TLS. */
  noDowngrade: boolean
  /** Level 4: bounce tagged mail rather than relay it to a server declaring less. */
  peerLevel: boolean
}

export const FULL_ENFORCEMENT: Enforcement = Object.freeze({ noDowngrade: true, peerLevel: true })

/**
 * The answer for one hop. `bounce` is final (the hop will not change its
 * mind by itself: no STARTTLS, a lower declaration); `retry` may get better
 * (a handshake or certificate failure) and bounces once the retry window is
 * over. Both carry the 5.7.10 status the DSN shows, and a sentence naming
 * the hop and the reason.
 */
export type HopVerdict =
  | { action: 'deliver'; tls: boolean; passRequireTls: boolean; reason: 'ok' | 'tls_optional' | 'untagged' }
  | { action: 'bounce' | 'retry'; code: number; enhanced: string; text: string; reason: HopRefusal }

export type HopRefusal =
  | 'no_starttls'
  | 'tls_failed'
  | 'cert_unverified'
  | 'mx_not_in_policy'
  | 'peer_level_low'
  | 'peer_level_unknown'
  | 'no_requiretls'

/** "Link-Security-Required: 3" or "REQUIRETLS", as the sender wrote it. */
export function describeRequirement(req: Requirement): string {
  return req.source === 'requiretls' ? 'REQUIRETLS' : `Link-Security-Required: ${req.level}`
}

/** The level a requirement is counted under in linksec_tagged_messages_total. */
export function requirementLabel(req: Requirement): string {
  return req.source === 'requiretls' ? 'requiretls' : String(req.level)
}

function refuse(action: 'bounce' | 'retry', reason: HopRefusal, req: Requirement, why: string): HopVerdict {
  const what =
    req.level > 0
      ? `this message (${describeRequirement(req)}) was not sent: ${why}`
      : `this message was not sent: ${why}`
  return action === 'bounce'
    ? { action, code: 550, enhanced: '5.7.10', text: what, reason }
    : { action, code: 451, enhanced: '4.7.10', text: what, reason }
}

/** True when the no-downgrade rule applies to this message on this server. */
export function isEnforced(req: Requirement, enforcement: Enforcement): boolean {
  if (req.tlsOptional) return false
  // RFC 8689 obliges every relay that accepted REQUIRETLS, whatever our level.
  return req.source === 'requiretls' || (req.level > 0 && enforcement.noDowngrade)
}

/** Decides whether `facts` describe an acceptable hop for a message requiring `req`. */
export function decideHop(
  req: Requirement,
  facts: LinkFacts,
  policy: PeerPolicy | undefined,
  enforcement: Enforcement = FULL_ENFORCEMENT,
): HopVerdict {
  const enforced = isEnforced(req, enforcement)
  // TLS-Required: No (RFC 8689 §5) waives MTA-STS and DANE too.
  const policyNeedsTls = !req.tlsOptional && Boolean(policy?.tlsRequired || policy?.certificateRequired)
  if (!facts.tls) {
    if (!enforced && !policyNeedsTls) return deliverPlain(req)
    return plaintextRefusal(req, facts, policy, enforced)
  }
  const certRefusal = checkCertificate(req, facts, policy, enforced)
  if (certRefusal) return certRefusal
  if (!enforced) return { action: 'deliver', tls: true, passRequireTls: false, reason: deliverReason(req) }
  const levelRefusal = checkPeerLevel(req, facts, policy, enforcement)
  if (levelRefusal) return levelRefusal
  return {
    action: 'deliver',
    tls: true,
    passRequireTls: req.source === 'requiretls' && facts.offersRequireTls,
    reason: 'ok',
  }
}

function deliverReason(req: Requirement): 'tls_optional' | 'untagged' | 'ok' {
  if (req.tlsOptional) return 'tls_optional'
  return req.level === 0 ? 'untagged' : 'ok'
}

function deliverPlain(req: Requirement): HopVerdict {
  return { action: 'deliver', tls: false, passRequireTls: false, reason: deliverReason(req) }
}

function plaintextRefusal(
  req: Requirement,
  facts: LinkFacts,
  policy: PeerPolicy | undefined,
  enforced: boolean,
): HopVerdict {
  const because = enforced ? '' : ` (${policy?.domain} publishes a policy that requires TLS)`
  if (!facts.offersStartTls)
    return refuse(
      'bounce',
      'no_starttls',
      req,
      `the receiving server ${facts.hop} does not offer STARTTLS${because}`,
    )
  const err = facts.tlsError ? `: ${facts.tlsError}` : ''
  return refuse('retry', 'tls_failed', req, `the TLS handshake with ${facts.hop} failed${err}${because}`)
}

function checkCertificate(
  req: Requirement,
  facts: LinkFacts,
  policy: PeerPolicy | undefined,
  enforced: boolean,
): HopVerdict | undefined {
  if (req.tlsOptional) return undefined
  const byPolicy = Boolean(policy?.certificateRequired)
  const byTag = enforced && req.verifiedCertificate
  if (byPolicy && facts.mxMatchesPolicy === false)
    return refuse(
      'retry',
      'mx_not_in_policy',
      req,
      `${facts.hop} is not a mail server listed in the policy of ${policy!.domain}`,
    )
  if ((byTag || byPolicy) && !facts.certVerified) {
    const err = facts.certError ? ` (${facts.certError})` : ''
    return refuse(
      'retry',
      'cert_unverified',
      req,
      `the certificate of ${facts.hop} could not be verified${err}`,
    )
  }
  return undefined
}

/** The level the hop declares: this session's EHLO first, else the policy engine's. */
export function declaredLevel(
  facts: LinkFacts,
  policy: PeerPolicy | undefined,
): { level?: Level; source: string } {
  if (facts.peerEhloDeclaration !== undefined) return { level: facts.peerEhloDeclaration, source: 'EHLO' }
  if (policy?.level !== undefined) return { level: policy.level, source: policy.source ?? 'policy' }
  return { source: 'none' }
}

function checkPeerLevel(
  req: Requirement,
  facts: LinkFacts,
  policy: PeerPolicy | undefined,
  enforcement: Enforcement,
): HopVerdict | undefined {
  const declared = declaredLevel(facts, policy)
  if (req.source === 'requiretls') {
    // RFC 8689 §4.2: the hop must say REQUIRETLS after STARTTLS; a linksec
    // level >= 3 carries the same no-downgrade promise (docs/architecture.md §6.3).
    if (!facts.offersRequireTls && (declared.level ?? 0) < 3)
      return refuse(
        'bounce',
        'no_requiretls',
        req,
        `${facts.hop} supports neither REQUIRETLS nor link-security level 3 or more`,
      )
    // A Link-Security-Required: 4 beside REQUIRETLS still needs a level-4 hop.
    if (req.level <= 3) return undefined
  }
  if (!enforcement.peerLevel || (declared.level ?? 0) >= req.level) return undefined
  // A policy lookup that failed might have said more: retry, do not bounce yet.
  const action = declared.source !== 'EHLO' && policy?.uncertain ? 'retry' : 'bounce'
  if (declared.level === undefined)
    return refuse(
      action,
      'peer_level_unknown',
      req,
      `${facts.hop} declares no link-security level (level ${req.level} is required)`,
    )
  return refuse(
    action,
    'peer_level_low',
    req,
    `${facts.hop} declares link-security level ${declared.level} (${declared.source}), below the required level ${req.level}`,
  )
}
