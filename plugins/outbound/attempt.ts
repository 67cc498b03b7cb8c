/**
 * One delivery attempt of one HMailItem under the no-downgrade rule.
 *
 * At get_mx (run by Haraka before every attempt) the outbound duty installs
 * three per-instance overrides on the HMailItem — the same technique as the
 * documented `get_force_tls` hack (docs/architecture.md §5.2), nothing global:
 * - `get_force_tls`: TLS is mandatory for a tagged message (or a destination
 *   whose policy requires it), so Haraka never falls back to plaintext and
 *   its TLS no-go list does not apply;
 * - `try_deliver_host_on_socket`: each session gets a probe (session.ts);
 * - `temp_fail`: where Haraka gives up on an attempt, the probes' findings
 *   decide what happens to the message: a hop that can never qualify (no
 *   STARTTLS, a lower declaration) bounces it at once; a TLS handshake or
 *   certificate failure is retried until [enforce] tls_retry_window has
 *   passed since queueing, then bounces. The DSN says 5.7.10, names the hop
 *   and the reason (refuse.ts, core/enforce/dsn.ts).
 * Each refused hop is one log line with the decision fields
 * (core/decision-log.ts), INFO for a final refusal and WARN for a retry;
 * Haraka's own ERROR line for the session linksec ended (`Ongoing
 * connection failed … linksec refused …`) becomes a debug line, so ERROR
 * stays for real failures.
 */
import { decisionFields, decisionLogLevel } from '../../core/decision-log'
import { addressDomain } from '../../core/address'
import { mxMatches } from '../../core/policy'
import {
  decideHop,
  declaredLevel,
  describeRequirement,
  isEnforced,
  type Enforcement,
  type HopVerdict,
  type LinkFacts,
  type PeerPolicyWithMx,
} from '../../core/enforce'
import { requiredLevel, type Level, type Requirement } from '../../core/levels'
import type { Runtime } from '../../core/runtime'
import type { HarakaMx, HMailItem } from './hmail'
import { HOP_REFUSED_PREFIX, probeSession, watchErrors, type SessionProbe } from './session'
import { recordTlsOutcome } from '../tlsrpt'

export interface AttemptState {
  req: Requirement
  policy: PeerPolicyWithMx
  enforcement: Enforcement
  probes: SessionProbe[]
  /** The last temp_fail was ours (a TLS/certificate refusal inside the window). */
  deferredForTls: boolean
  /** Absolute end of the retry window (ms since epoch). */
  windowEndsAt: number
}

type Refusal = Extract<HopVerdict, { action: 'bounce' | 'retry' }>

/** A hop's refusal, with the hop it was about and what its session showed (for the DSN). */
export type HopRefusalAt = Refusal & {
  hop: string
  /** The hop's host name (Remote-MTA in the DSN). */
  mta?: string
  declared: { level?: Level; source: string }
  /** The TLS handshake or certificate error, if that was the reason. */
  error?: string
}

export interface AttemptHooks {
  /** The hop refusals are final (or the window is over): bounce or deliver the safe part. */
  refuse(hmail: HMailItem, refusals: HopRefusalAt[]): void
  learnFromEhlo?(lines: readonly string[]): void
}

const STATE = Symbol.for('linksec.outbound.attempt')
type WithState = HMailItem & { [STATE]?: AttemptState }
/** The MX host name of each probe, for Remote-MTA. */
const MTA = new WeakMap<SessionProbe, string>()

export function attemptOf(hmail: HMailItem): AttemptState | undefined {
  return (hmail as WithState)[STATE]
}

/** "mx.example.net [192.0.2.1]:25" or "192.0.2.1:25". */
export function hopName(mx: HarakaMx, host: string, port: number): string {
  if (mx.path) return mx.path
  return mx.from_dns && mx.from_dns !== host ? `${mx.from_dns} [${host}]:${port}` : `${host}:${port}`
}

/** TLS is forced when the rule or the destination's policy forbids plaintext. */
function mustForceTls(req: Requirement, policy: PeerPolicyWithMx, enforcement: Enforcement): boolean {
  return (
    isEnforced(req, enforcement) || (!req.tlsOptional && (policy.tlsRequired || policy.certificateRequired))
  )
}

function needsVerifiedCertificate(state: AttemptState): boolean {
  if (state.req.tlsOptional) return false
  return (
    (isEnforced(state.req, state.enforcement) && state.req.verifiedCertificate) ||
    state.policy.certificateRequired
  )
}

/** The rule under which TLS without a verified certificate is enough, in a few words. */
function relaxedRule(state: AttemptState): string {
  if (isEnforced(state.req, state.enforcement))
    return `${describeRequirement(state.req)} needs TLS, not a verified certificate`
  return `the policy of ${state.policy.domain} requires TLS, not a verified certificate`
}

/** One line per refused hop, with the decision fields (core/decision-log.ts). */
export function logRefusal(
  rt: Runtime,
  hmail: HMailItem,
  r: Refusal,
  facts: LinkFacts,
  policy?: PeerPolicyWithMx,
) {
  const action = r.action === 'bounce' ? 'reject' : 'tempfail'
  const verdict = { action, code: r.code, enhanced: r.enhanced, text: r.text, reason: r.reason } as const
  const req = attemptOf(hmail)?.req
  const declared = declaredLevel(facts, policy)
  const fields = decisionFields(
    {
      adapter: 'haraka',
      queueId: hmail.todo.uuid,
      verdict,
      level: req ? requiredLevel(req) : undefined,
      senderDomain: addressDomain(hmail.todo.mail_from.address ?? ''),
      extra: {
        stage: 'hop',
        hop: facts.hop,
        domain: hmail.todo.domain,
        outcome: r.action,
        peer_declares: declared.level,
        peer_declares_source: declared.level === undefined ? undefined : declared.source,
        tls_error: facts.tlsError,
        cert_error: facts.certError,
      },
    },
    action,
    verdict,
  )
  rt.log[decisionLogLevel(action)]('linksec: hop refused', fields)
}

/** Haraka's ERROR line for a session linksec itself ended ("Ongoing connection failed … linksec refused …"). */
function isOurRefusalLine(args: unknown[]): boolean {
  return typeof args[0] === 'string' && args[0].includes(`: Error: ${HOP_REFUSED_PREFIX}`)
}

export function prepareAttempt(
  rt: Runtime,
  hmail: HMailItem,
  state: AttemptState,
  hooks: AttemptHooks,
): void {
  const proto = Object.getPrototypeOf(hmail) as HMailItem
  ;(hmail as WithState)[STATE] = state
  const force = mustForceTls(state.req, state.policy, state.enforcement)
  hmail.get_force_tls = (mx) => force || proto.get_force_tls.call(hmail, mx)
  hmail.logerror = (...args: unknown[]) =>
    isOurRefusalLine(args) ? proto.logdebug.apply(hmail, args) : proto.logerror.apply(hmail, args)
  hmail.try_deliver_host_on_socket = function (mx, host, port, socket) {
    const hop = hopName(mx, host, port)
    const probe = probeSession(socket, {
      hop,
      decide: (facts) => decideHop(state.req, facts, state.policy, state.enforcement),
      needVerifiedCertificate: needsVerifiedCertificate(state),
      mxMatchesPolicy: mxMatches(mx.from_dns ?? mx.exchange ?? '', state.policy.mxPatterns),
      onEhlo: (lines, tls) => (tls ? hooks.learnFromEhlo?.(lines) : undefined),
      onRefused: (verdict, facts) => logRefusal(rt, hmail, verdict, facts, state.policy),
      relaxForcedTls: (certError) => {
        if (!hmail.force_tls) return
        // Haraka would end a forced-TLS session whose certificate did not verify; this rule allows it.
        hmail.force_tls = false
        rt.log.info('linksec: certificate not verified, not required', {
          queue_id: hmail.todo.uuid,
          hop,
          cert_error: certError,
          link_level: requiredLevel(state.req),
          rule: relaxedRule(state),
        })
      },
    })
    MTA.set(probe, mx.from_dns ?? mx.exchange ?? host)
    state.probes.push(probe)
    proto.try_deliver_host_on_socket.call(this, mx, host, port, socket)
    watchErrors(socket, probe)
    recordTlsOutcome(rt, socket, probe, { domain: hmail.todo.domain, mxHost: MTA.get(probe)!, ip: host }) // RFC 8460 counts
  }
  hmail.temp_fail = (err, extra) => onTempFail(rt, hmail, state, proto, hooks, err, extra)
}

/** What the probes of this attempt found against the rule; deliveries are left out. Logs those not yet logged. */
function refusalsOf(rt: Runtime, hmail: HMailItem, state: AttemptState): HopRefusalAt[] {
  const out: HopRefusalAt[] = []
  for (const p of state.probes) {
    const v =
      p.verdict ?? (p.sawEhlo ? decideHop(state.req, p.facts, state.policy, state.enforcement) : undefined)
    if (!v || v.action === 'deliver') continue
    if (!p.logged) logRefusal(rt, hmail, v, p.facts, state.policy)
    p.logged = true
    out.push({
      ...v,
      hop: p.facts.hop,
      mta: MTA.get(p),
      declared: declaredLevel(p.facts, state.policy),
      error:
        v.reason === 'tls_failed'
          ? p.facts.tlsError
          : v.reason === 'cert_unverified'
            ? p.facts.certError
            : undefined,
    })
  }
  return out
}

function onTempFail(
  rt: Runtime,
  hmail: HMailItem,
  state: AttemptState,
  proto: HMailItem,
  hooks: AttemptHooks,
  err: string,
  extra: unknown,
): void {
  const refusals = refusalsOf(rt, hmail, state)
  state.probes = []
  // Nothing of ours: an ordinary failure (refused connection, 4xx reply) keeps Haraka's schedule.
  if (refusals.length === 0) return proto.temp_fail.call(hmail, err, extra)
  const final = refusals.every((r) => r.action === 'bounce')
  if (final || rt.now() >= state.windowEndsAt) return hooks.refuse(hmail, refusals)
  state.deferredForTls = true
  proto.temp_fail.call(hmail, `linksec: ${refusals[0]!.text}`, extra)
}

/** Seconds until the next try: Haraka's own delay, but never past the end of the window. */
export function clampedDelaySeconds(state: AttemptState, hmailDelaySeconds: number, now: number): number {
  const left = Math.ceil((state.windowEndsAt - now) / 1000)
  return Math.max(1, Math.min(hmailDelaySeconds, left))
}
