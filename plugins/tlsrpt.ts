/**
 * TLS report outcomes of Haraka's outbound sessions (core/tlsrpt): when an
 * outbound session's socket closes, what its probe saw (STARTTLS offered,
 * TLS up, certificate verified, the errors) is counted under the policy of the
 * destination domain. Called once per session from plugins/outbound/attempt.ts.
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
  socket.once('close', () => {
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
  })
}
