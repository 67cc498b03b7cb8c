/**
 * What linksec knows about one recipient address before anyone writes to
 * it: the domain's policy (the engine behind `linksec check`, core/policy)
 * and the recipient's published OpenPGP key (core/keys' finder: WKD,
 * OPENPGPKEY). `GET /v1/recipients/<address>` (core/http/recipients.ts)
 * returns it as JSON and `linksec send` decides from it, so both give the
 * same answer for the same address.
 */
import { parseAddress, keyFinderFor, type MailAddress } from '../keys'
import type { KeyLookup } from '../keys/finder'
import { policyResolverFor, type DomainPolicy } from '../policy'
import { policyToJson } from '../policy/describe'
import type { Runtime } from '../runtime'
import type * as openpgp from 'openpgp'

/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets, so an address at most 254. */
const MAX_ADDRESS_OCTETS = 254

export interface RecipientKey {
  published: boolean
  /** found | notfound | unusable | temperror (core/keys/finder.ts). */
  outcome: KeyLookup['kind']
  fingerprint?: string
  /** local, cache, wkd_advanced, wkd_direct, openpgpkey. */
  source?: string
  reason: string
}

/**
 * encrypt   a key is published: encrypt to it and the content is confidential end to end
 * tagged    no key, but the domain enforces TLS at level >= 3: a message tagged
 *           Link-Security-Required: 3 is refused rather than sent in clear
 * notice    nothing vouches for the link: send the "pick it up on our site" message
 * retry     a lookup failed and nothing valid is cached: ask again later
 */
export type Advice = 'encrypt' | 'tagged' | 'notice' | 'retry'

export interface RecipientFacts {
  address: MailAddress
  policy: DomainPolicy
  key: RecipientKey
  /** The published keys (empty when none), for encrypting to them. */
  keys: openpgp.PublicKey[]
  advice: Advice
}

/** A sentence saying why `input` is not an address linksec can look up, or undefined when it is one. */
export function badAddressReason(input: string): string | undefined {
  if (input === '') return 'the address is empty; write it as local@domain'
  if (Buffer.byteLength(input, 'utf8') > MAX_ADDRESS_OCTETS)
    return `the address is longer than ${MAX_ADDRESS_OCTETS} octets (RFC 5321 §4.5.3.1.3)`
  const at = input.lastIndexOf('@')
  if (at < 0) return `"${printable(input)}" has no @domain; write it as local@domain`
  if (parseAddress(input)) return undefined
  const domain = input.slice(at + 1)
  if (/[^\x00-\x7f]/.test(domain))
    return `the domain "${printable(domain)}" is not ASCII; write an internationalised domain as its A-label (xn--…)`
  return `"${printable(input)}" is not an address (RFC 5322 addr-spec local@domain with a domain of at least two labels)`
}

/** At most 80 characters, controls shown as \xNN, for quoting input back. */
function printable(s: string): string {
  const safe = s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
  return safe.length > 80 ? `${safe.slice(0, 79)}…` : safe
}

function keyOf(k: KeyLookup): RecipientKey {
  if (k.kind !== 'found') return { published: false, outcome: k.kind, reason: k.reason }
  const primary = k.ring.keys[0]
  const fingerprint = primary?.getFingerprint().toUpperCase()
  return {
    published: true,
    outcome: 'found',
    fingerprint,
    source: k.source,
    reason: `a key for ${k.ring.address} is published (${fingerprint}, from ${k.source})`,
  }
}

export function adviceFor(policy: DomainPolicy, key: RecipientKey): Advice {
  if (key.published) return 'encrypt'
  if (policy.level >= 3 && policy.tlsMode !== 'none' && policy.tlsMode !== 'may') return 'tagged'
  if (policy.temporaryFailure || key.outcome === 'temperror') return 'retry'
  return 'notice'
}

/** The policy of the address's domain and the recipient's key, looked up together. */
export async function lookupRecipient(
  rt: Runtime,
  address: MailAddress,
  signal?: AbortSignal,
): Promise<RecipientFacts> {
  const [policy, found] = await Promise.all([
    policyResolverFor(rt).resolve(address.domain),
    keyFinderFor(rt)
      .find(address, signal)
      .catch((e: unknown): KeyLookup => ({
        kind: 'temperror',
        reason: `the key lookup failed: ${e instanceof Error ? e.message : String(e)}`,
      })),
  ])
  const key = keyOf(found)
  const keys = found.kind === 'found' ? found.ring.keys : []
  return { address, policy, key, keys, advice: adviceFor(policy, key) }
}

/** The JSON of GET /v1/recipients/<address>; `policy` is exactly `linksec check --json` for the domain. */
export function recipientToJson(f: RecipientFacts): Record<string, unknown> {
  const p = f.policy
  return {
    address: f.address.address,
    domain: f.address.domain,
    advice: f.advice,
    level: p.level,
    tls: { mode: p.tlsMode, source: p.decidedBy, mxPatterns: p.mxPatterns, uncertain: p.tlsModeUncertain },
    sig: p.signatures,
    key: f.key,
    temporaryFailure: p.temporaryFailure || f.key.outcome === 'temperror',
    policy: policyToJson(p),
  }
}
