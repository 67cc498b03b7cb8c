/**
 * A sender domain's declared CA (docs/architecture.md §6.7): when the From
 * domain names a CA (`ca=` in its `_linksec` TXT record, or a pin in the
 * static domains list), a signature passes only if the signing key's user ID
 * for the From address carries a valid certification by that CA
 * (core/keys/ca.ts checkCertification). Who controls the domain's web server
 * then cannot publish a key of their own for a user: it would lack the CA's
 * certification.
 *
 * Which `ca=` counts: the static list's (the operator's fact), or one from a
 * DNSSEC-validated DNS answer (the AD bit of a resolver [resolver] trust_ad
 * believes). An unvalidated `ca=` could be forged by whoever can forge the
 * TXT answer, so it is reported in the Authentication-Results comment and
 * ignored. Keys from the local store (`[keys] dir`) are the operator's own
 * facts and are not asked for a certification.
 *
 * The CA key itself is fetched like any key, at `openpgp-ca@<domain>`
 * (WKD, the local store, OPENPGPKEY), and must have the declared
 * fingerprint; not finding it is a temperror (the message is retried, not
 * refused, while the domain's key server is broken).
 */
import * as openpgp from 'openpgp'
import { caAddress, checkCertification, parseAddress, type KeyFinder, type MailAddress } from '../keys'
import type { KeyRing } from '../keys/material'
import type { StaticList } from '../policy/static-list'
import type { CaDeclaration, SignaturePolicyLookup } from './sig-policy'

/** What the CA rule made of a passing signature. */
export type CaOutcome =
  | { kind: 'none' }
  | { kind: 'ignored'; fingerprint: string; why: string }
  | { kind: 'certified'; fingerprint: string; source: 'dnssec' | 'static' }
  | { kind: 'not_certified'; fingerprint: string; source: 'dnssec' | 'static'; reason: string }
  | { kind: 'temperror'; reason: string }

export interface CaPolicyDeps {
  lookup: SignaturePolicyLookup
  pins: StaticList
  finder: KeyFinder
  now: number
  /** Bounds a wait on the network by the message's deadline. */
  bound: <T>(work: Promise<T>) => Promise<T>
  signal?: AbortSignal
}

/** How long a certification check result is reused for one key (ms); a revocation shows within it. */
const CHECK_REUSE_MS = 10 * 60_000
const checked = new WeakMap<openpgp.PublicKey, Map<string, { valid: boolean; reason: string; at: number }>>()

/** The declaration that counts for `domain`, or why the one seen does not. */
export async function caDeclarationFor(
  domain: string,
  deps: Pick<CaPolicyDeps, 'lookup' | 'pins' | 'bound' | 'signal'>,
): Promise<CaDeclaration & { source?: 'dnssec' | 'static' }> {
  const pinned = deps.pins.get(domain)?.ca
  if (pinned) return { kind: 'declared', fingerprint: pinned, validated: true, source: 'static' }
  const { lookup } = deps
  if (!lookup.ca) return { kind: 'none' }
  const d = lookup.peekCa?.(domain) ?? (await deps.bound(lookup.ca(domain, deps.signal)))
  return d.kind === 'declared' && d.validated ? { ...d, source: 'dnssec' } : d
}

/**
 * The CA rule for a signature that passed with the key `signer` (primary
 * fingerprint) of `ring`, found at `keySource`.
 */
export async function applyDomainCa(
  from: MailAddress,
  ring: KeyRing,
  signer: string,
  keySource: string,
  deps: CaPolicyDeps,
): Promise<CaOutcome> {
  if (keySource === 'local') return { kind: 'none' }
  const d = await caDeclarationFor(from.domain, deps)
  if (d.kind === 'none') return { kind: 'none' }
  if (d.kind === 'unknown')
    return {
      kind: 'temperror',
      reason: `could not learn whether ${from.domain} declares a domain CA: ${d.reason}`,
    }
  if (!d.validated || !d.source)
    return {
      kind: 'ignored',
      fingerprint: d.fingerprint,
      why: `the _linksec.${from.domain} answer was not DNSSEC-validated`,
    }
  const source = d.source
  const ca = await caKey(from.domain, d.fingerprint, deps)
  if ('reason' in ca) return { kind: 'temperror', reason: ca.reason }
  const key = await oneKey(ring.keys.filter((k) => k.getFingerprint().toUpperCase() === signer))
  if (!key)
    return {
      kind: 'not_certified',
      fingerprint: d.fingerprint,
      source,
      reason: 'key not certified by the domain CA',
    }
  const r = await certified(key, from.address, ca.key, deps.now)
  return r.valid
    ? { kind: 'certified', fingerprint: d.fingerprint, source }
    : { kind: 'not_certified', fingerprint: d.fingerprint, source, reason: r.reason }
}

/**
 * The signer's key as one: when the key server serves the same key more than
 * once (say with and without the CA's revocation of its certification),
 * every copy's signatures count together, so no copy can hide a revocation.
 */
async function oneKey(copies: openpgp.PublicKey[]): Promise<openpgp.PublicKey | undefined> {
  if (copies.length <= 1) return copies[0]
  const merged = new openpgp.PublicKey(copies[0]!.toPacketList())
  // By hand: openpgp.js's update() drops third-party revocations (it checks them against the key itself).
  for (const other of copies.slice(1))
    for (const u of other.users) {
      const mine = merged.users.find((m) => m.userID && u.userID && m.userID.userID === u.userID.userID)
      if (!mine) continue
      mine.otherCertifications.push(...u.otherCertifications)
      mine.revocationSignatures.push(...u.revocationSignatures)
    }
  return merged
}

async function caKey(
  domain: string,
  fingerprint: string,
  deps: CaPolicyDeps,
): Promise<{ key: openpgp.PublicKey } | { reason: string }> {
  const address = parseAddress(caAddress(domain))!
  const found = deps.finder.peek?.(address) ?? (await deps.bound(deps.finder.find(address, deps.signal)))
  const where = `the domain CA key ${fingerprint} of ${domain} (at ${address.address})`
  if (found.kind !== 'found') return { reason: `${where} could not be fetched: ${found.reason}` }
  const key = found.ring.keys.find((k) => k.getFingerprint().toUpperCase() === fingerprint)
  if (!key) return { reason: `${where} is not published; a key with another fingerprint is` }
  return { key }
}

async function certified(
  key: openpgp.PublicKey,
  address: string,
  ca: openpgp.PublicKey,
  now: number,
): Promise<{ valid: boolean; reason: string }> {
  const slot = `${ca.getFingerprint()} ${address.toLowerCase()}`
  let byCa = checked.get(key)
  const hit = byCa?.get(slot)
  if (hit && now - hit.at < CHECK_REUSE_MS && now >= hit.at) return hit
  const r = await checkCertification(key, address, ca, new Date(now))
  const entry = { valid: r.valid, reason: r.valid ? '' : r.reason, at: now }
  if (!byCa) checked.set(key, (byCa = new Map<string, { valid: boolean; reason: string; at: number }>()))
  byCa.set(slot, entry)
  return entry
}
