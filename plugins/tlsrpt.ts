/**
 * TLS report outcomes of Haraka's outbound sessions (core/tlsrpt): when an
 * outbound session ends, what its probe saw (STARTTLS offered,
 * TLS up, certificate verified, the errors) is counted under the policy of the
 * destination domain. Called once per session from plugins/outbound/attempt.ts.
 * Haraka 3.3's client_pool.release_client() removes every listener before it
 * destroys the socket (a 'close' listener never runs), so the end of the
 * session is seen by wrapping this socket instance's destroy().
 */
import { describeError } from '../core/errors'
import { policyResolverFor } from '../core/policy'
import type { Runtime } from '../core/runtime'
import { recordSession } from '../core/tlsrpt'
import type { HarakaClientSocket } from './outbound/hmail'
import type { SessionProbe } from './outbound/session'

export function recordTlsOutcome(
  rt: Runtime,
  socket: HarakaClientSocket,
  probe: SessionProbe,
  where: { domain: string; mxHost: string; ip: string },
): void {
  if (!rt.config.tlsrpt.enabled) return
  const s = socket as HarakaClientSocket & { destroy(...a: unknown[]): unknown }
  const destroy = s.destroy.bind(s)
  let counted = false
  s.destroy = (...a: unknown[]) => {
    if (!counted) record()
    counted = true
    return destroy(...a)
  }
  const record = () => {
    const f = probe.facts
    policyResolverFor(rt)
      .resolve(where.domain)
      .then((policy) =>
        recordSession(rt, policy, {
          sawEhlo: probe.sawEhlo,
          tls: f.tls,
          offersStartTls: f.offersStartTls,
          certVerified: f.certVerified,
          certError: f.certError,
          tlsError: f.tlsError,
          mxHost: where.mxHost,
          ip: where.ip,
        }),
      )
      .catch((e: unknown) => rt.log.warn('TLS report outcome not recorded', { error: describeError(e) }))
  }
}
