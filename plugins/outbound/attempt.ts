/**
 * One delivery attempt of one HMailItem under the no-downgrade rule.
 *
 * At get_mx (run by Haraka before every attempt) the outbound duty installs
 * three per-instance overrides on the HMailItem — the same technique as the
 * documented `get_force_tls` hack (standards.md §9), nothing global:
 * - `get_force_tls`: TLS is mandatory for a tagged message (or a destination
 *   whose policy requires it), so Haraka never falls back to plaintext and
 *   its TLS no-go list does not apply;
 * - `try_deliver_host_on_socket`: each session gets a probe (session.ts);
 * - `temp_fail`: where Haraka gives up on an attempt, the probes' findings
 *   decide what happens to the message: a hop that can never qualify (no
 *   STARTTLS, a lower declaration) bounces it at once; a TLS handshake or
 *   certificate failure is retried until [enforce] tls_retry_window has
 *   passed since queueing, then bounces. The DSN says 5.7.10, names the hop
 *   and the reason.
 */
import {
  decideHop,
  isEnforced,
  mxMatches,
  type EnforceDuties,
  type HopVerdict,
  type PeerPolicyWithMx,
} from '../../core/enforce'
import type { Requirement } from '../../core/levels'
import type { Runtime } from '../../core/runtime'
import type { HarakaMx, HMailItem } from './hmail'
import { probeSession, watchErrors, type SessionProbe } from './session'

export interface AttemptState {
  req: Requirement
  policy: PeerPolicyWithMx
  duties: EnforceDuties
  probes: SessionProbe[]
  /** The last temp_fail was ours (a TLS/certificate refusal inside the window). */
  deferredForTls: boolean
  /** Absolute end of the retry window (ms since epoch). */
  windowEndsAt: number
}

/** A hop's refusal, with the hop it was about. */
export type HopRefusalAt = Extract<HopVerdict, { action: 'bounce' | 'retry' }> & { hop: string }

export interface AttemptHooks {
  /** The hop refusals are final (or the window is over): bounce or deliver the safe part. */
  refuse(hmail: HMailItem, refusals: HopRefusalAt[]): void
  learnFromEhlo?(lines: readonly string[]): void
}

const STATE = Symbol.for('linksec.outbound.attempt')
type WithState = HMailItem & { [STATE]?: AttemptState }

export function attemptOf(hmail: HMailItem): AttemptState | undefined {
  return (hmail as WithState)[STATE]
}

/** "mx.example.net [192.0.2.1]:25" or "192.0.2.1:25". */
export function hopName(mx: HarakaMx, host: string, port: number): string {
  if (mx.path) return mx.path
  return mx.from_dns && mx.from_dns !== host ? `${mx.from_dns} [${host}]:${port}` : `${host}:${port}`
}

/** TLS is forced when the rule or the destination's policy forbids plaintext. */
export function mustForceTls(req: Requirement, policy: PeerPolicyWithMx, duties: EnforceDuties): boolean {
  return isEnforced(req, duties) || (!req.tlsOptional && (policy.tlsRequired || policy.certificateRequired))
}

function needsVerifiedCertificate(state: AttemptState): boolean {
  if (state.req.tlsOptional) return false
  return (
    (isEnforced(state.req, state.duties) && state.req.verifiedCertificate) || state.policy.certificateRequired
  )
}

export function prepareAttempt(
  rt: Runtime,
  hmail: HMailItem,
  state: AttemptState,
  hooks: AttemptHooks,
): void {
  const proto = Object.getPrototypeOf(hmail) as HMailItem
  ;(hmail as WithState)[STATE] = state
  const force = mustForceTls(state.req, state.policy, state.duties)
  hmail.get_force_tls = (mx) => force || proto.get_force_tls.call(hmail, mx)
  hmail.try_deliver_host_on_socket = function (mx, host, port, socket) {
    const probe = probeSession(socket, {
      hop: hopName(mx, host, port),
      decide: (facts) => decideHop(state.req, facts, state.policy, state.duties),
      needVerifiedCertificate: needsVerifiedCertificate(state),
      mxMatchesPolicy: mxMatches(mx.from_dns ?? mx.exchange ?? '', state.policy.mxPatterns),
      onEhlo: (lines, tls) => (tls ? hooks.learnFromEhlo?.(lines) : undefined),
      log: (m) => hmail.loginfo(m),
    })
    state.probes.push(probe)
    proto.try_deliver_host_on_socket.call(this, mx, host, port, socket)
    watchErrors(socket, probe)
  }
  hmail.temp_fail = (err, extra) => onTempFail(rt, hmail, state, proto, hooks, err, extra)
}

/** What the probes of this attempt found against the rule; deliveries are left out. */
function refusalsOf(state: AttemptState): HopRefusalAt[] {
  const out: HopRefusalAt[] = []
  for (const p of state.probes) {
    const v = p.verdict ?? (p.sawEhlo ? decideHop(state.req, p.facts, state.policy, state.duties) : undefined)
    if (v && v.action !== 'deliver') out.push({ ...v, hop: p.facts.hop })
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
  const refusals = refusalsOf(state)
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
