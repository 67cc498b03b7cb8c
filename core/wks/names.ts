/**
 * Who the Web Key Service answers for (core/wks/index.ts): the submission
 * address `<[wks] local_part>@<domain>` of each domain this server signs
 * and publishes keys for ([main] domain, [sign] domains).
 */
import { parseAddress } from '../keys/address'
import type { Runtime } from '../runtime'
import { signedDomains } from '../sign/step'

/** The submission address of a domain. */
export function submissionAddress(rt: Runtime, domain: string): string {
  return `${rt.config.wks.local_part}@${domain.toLowerCase()}`
}

/** The domains whose users may submit: [main] domain and [sign] domains. */
export function wksDomains(rt: Runtime): Set<string> {
  return signedDomains(rt.config)
}

/** The domain whose submission address `address` is, when WKS is on; else undefined. */
export function submissionDomain(rt: Runtime, address: string): string | undefined {
  if (!rt.config.wks.enabled) return undefined
  const a = parseAddress(address.replace(/^<|>$/g, ''))
  if (!a || !wksDomains(rt).has(a.domain)) return undefined
  return a.address.toLowerCase() === submissionAddress(rt, a.domain).toLowerCase() ? a.domain : undefined
}
