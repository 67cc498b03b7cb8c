/**
 * Where the outbound duty asks what a destination domain declares: the
 * policy engine of the runtime (core/policy: static list, DANE, MTA-STS,
 * `_linksec` TXT, learned EHLO declarations), seen through peerPolicyOf().
 * Tests may install another provider.
 */
import { isLinksecError } from '../../core/errors'
import { peerPolicyOf, type PeerPolicyWithMx } from '../../core/enforce'
import { policyResolverFor } from '../../core/policy'
import type { Runtime } from '../../core/runtime'

export interface PolicyProvider {
  /** What is believed of DOMAIN now; throws only for failures that say nothing. */
  resolve(domain: string): Promise<PeerPolicyWithMx>
  /** Remembers a LINKSEC declaration seen in a peer's EHLO (for its ttl). */
  learnFromEhlo?(domain: string, lines: readonly string[]): unknown
}

/** A name that is not a domain (an address literal) has no policy: nothing is known. */
const nothingFor = (domain: string): PeerPolicyWithMx => ({
  domain,
  tlsRequired: false,
  certificateRequired: false,
  mxPatterns: [],
})

/** The runtime's policy engine as a PolicyProvider. */
function engineProvider(rt: Runtime): PolicyProvider {
  const engine = policyResolverFor(rt)
  return {
    resolve: async (domain) => {
      try {
        return peerPolicyOf(await engine.resolve(domain))
      } catch (e) {
        if (isLinksecError(e) && e.code === 'LINKSEC_BAD_DOMAIN') return nothingFor(domain)
        throw e
      }
    },
    learnFromEhlo: (domain, lines) => engine.learnFromEhlo(domain, lines),
  }
}

const byRuntime = new WeakMap<Runtime, PolicyProvider>()

export function policyProviderFor(rt: Runtime): PolicyProvider {
  let p = byRuntime.get(rt)
  if (!p) {
    p = engineProvider(rt)
    byRuntime.set(rt, p)
  }
  return p
}

/** The policy of DOMAIN for a delivery decision; a failed lookup is "uncertain", never a crash. */
export async function lookupPeerPolicy(rt: Runtime, domain: string): Promise<PeerPolicyWithMx> {
  try {
    return await policyProviderFor(rt).resolve(domain)
  } catch (e) {
    rt.log.warn('linksec: policy lookup failed; deciding from the session alone', {
      domain,
      error: String(e),
    })
    return { domain, tlsRequired: false, certificateRequired: false, mxPatterns: [], uncertain: true }
  }
}
