/**
 * Where the outbound duty asks what a destination domain declares. The
 * policy engine (core/policy) is wired in through one provider per Runtime;
 * until a provider is set, nothing is known of any domain (every tagged
 * message then rests on the peer's EHLO in the session, which is what the
 * Haraka adapter checks anyway).
 */
import type { PeerPolicyWithMx } from '../../core/enforce'
import type { Runtime } from '../../core/runtime'

export interface PolicyProvider {
  /** What is believed of DOMAIN now; throws only for failures that say nothing. */
  resolve(domain: string): Promise<PeerPolicyWithMx>
  /** Remembers a LINKSEC declaration seen in a peer's EHLO (for its ttl). */
  learnFromEhlo?(domain: string, lines: readonly string[]): unknown
}

export const NOTHING_KNOWN: PolicyProvider = {
  resolve: async (domain) => ({ domain, tlsRequired: false, certificateRequired: false, mxPatterns: [] }),
}

let factory: ((rt: Runtime) => PolicyProvider) | undefined
const byRuntime = new WeakMap<Runtime, PolicyProvider>()

/** Installs the policy engine (tests install fakes). */
export function setPolicyProviderFactory(f: ((rt: Runtime) => PolicyProvider) | undefined): void {
  factory = f
}

export function policyProviderFor(rt: Runtime): PolicyProvider {
  let p = byRuntime.get(rt)
  if (!p) {
    p = factory ? factory(rt) : NOTHING_KNOWN
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
