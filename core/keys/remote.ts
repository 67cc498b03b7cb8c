/**
 * Fetching a sender's key from its domain: WKD (advanced, then direct only
 * when `openpgpkey.<domain>` has no address — a server that does not answer
 * is not a reason to fall back) and OPENPGPKEY in DNS (only answers the
 * resolver authenticated count; unauthenticated ones are ignored, as RFC 7929
 * §7 relies on DNSSEC). Each returns an outcome value; only programming
 * errors throw.
 */
import { describeError, isLinksecError } from '../errors'
import type { DnsClient, HttpsClient } from '../net/types'
import type { MailAddress } from './address'
import { readKeyBlob, ringFor, type KeyRing } from './material'
import { openpgpkeyName, wkdUrls } from './names'

const NOT_THERE = new Set(['LINKSEC_FETCH_NO_ADDRESS', 'LINKSEC_FETCH_PRIVATE_ADDRESS'])

export type RemoteMethod = 'wkd_advanced' | 'wkd_direct' | 'openpgpkey'

export type MethodOutcome =
  | { outcome: 'found'; method: RemoteMethod; ring: KeyRing }
  | { outcome: 'notfound'; method: RemoteMethod; reason: string }
  /** The domain published something, but not a usable key for the address (see keysFromBytes). */
  | { outcome: 'unusable'; method: RemoteMethod; reason: string; result: UnusableResult }
  /** A temporary failure: retrying later may help. */
  | { outcome: 'error'; method: RemoteMethod; reason: string }
  /** OPENPGPKEY answered without DNSSEC authentication: treated as not found. */
  | { outcome: 'insecure'; method: RemoteMethod; reason: string }

/**
 * What a published-but-unusable key makes of a signed message. The rule
 * (RFC 8601 §2.7.1 meanings, as README's "Sender signatures" uses them):
 * what a key server answers decides only whether a key is available, never
 * whether the sender signed falsely. The server's faults are not the sender's.
 *
 *   key server answer                         result     why
 *   404/410, no record, no address            neutral    no key published
 *   5xx, 429, timeout, DNS failure            temperror  the key host is failing; retry
 *   bytes that are not an OpenPGP key         neutral    published, but no usable key
 *   keys without a user ID for the address    neutral    published, but no usable key
 *   the address's key, signature by it good   pass
 *   the address's key, signature not by it    fail       the signer is not the key's holder
 *   the address's key revoked or expired      fail       the sender's key state
 *
 * "neutral" is "signed but not evaluable": the message is accepted and
 * tagged, unless the domain declares sig=required, where an uncheckable
 * signature is treated like a missing one ([verify] on_missing_required).
 */
export type UnusableResult = 'neutral'

export interface RemoteDeps {
  dns: DnsClient
  https: HttpsClient
  /** Largest key accepted, bytes ([net] max_bytes). */
  maxBytes?: number
}

/** WKD advanced, or direct when the advanced host has no address. */
export async function fetchWkd(
  a: MailAddress,
  deps: RemoteDeps,
  signal?: AbortSignal,
): Promise<MethodOutcome> {
  const urls = wkdUrls(a)
  const has = await hostHasAddress(urls.advancedHost, deps.dns, signal)
  if (has === 'error')
    return { outcome: 'error', method: 'wkd_advanced', reason: `could not resolve ${urls.advancedHost}` }
  if (has) {
    const r = await fetchKey(a, urls.advanced, 'wkd_advanced', deps, signal)
    // The host vanished between our lookup and the client's: the draft's "no address" case.
    if (!(r.outcome === 'notfound' && r.reason.startsWith('LINKSEC_FETCH_NO_ADDRESS'))) return r
  }
  return fetchKey(a, urls.direct, 'wkd_direct', deps, signal)
}

async function hostHasAddress(
  host: string,
  dns: DnsClient,
  signal?: AbortSignal,
): Promise<boolean | 'error'> {
  try {
    const answers = await Promise.all([dns.query(host, 'A', { signal }), dns.query(host, 'AAAA', { signal })])
    if (answers.some((x) => x.records.length > 0)) return true
    return answers.every((x) => x.rcode === 'NOERROR' || x.rcode === 'NXDOMAIN') ? false : 'error'
  } catch {
    return 'error'
  }
}

async function fetchKey(
  a: MailAddress,
  url: string,
  method: RemoteMethod,
  deps: RemoteDeps,
  signal?: AbortSignal,
): Promise<MethodOutcome> {
  let res
  try {
    // The draft allows https->https redirects; the client refuses other hosts.
    res = await deps.https.get(url, { signal, maxRedirects: 3, maxBytes: deps.maxBytes })
  } catch (e) {
    // Definitely no address, or an address we may not fetch from: no key for us there.
    // Everything else (timeout, size, redirect elsewhere, TLS, 5xx) is a faulty host: temporary.
    if (isLinksecError(e) && NOT_THERE.has(e.code) && !e.temporary)
      return { outcome: 'notfound', method, reason: describeError(e) }
    return { outcome: 'error', method, reason: describeError(e) }
  }
  if (res.status === 404 || res.status === 410)
    return { outcome: 'notfound', method, reason: `HTTP ${res.status}` }
  if (res.status >= 500 || res.status === 429 || res.status === 408)
    return { outcome: 'error', method, reason: `${url.split('?')[0]} answered HTTP ${res.status}` }
  if (res.status !== 200) return { outcome: 'notfound', method, reason: `HTTP ${res.status}` }
  return keysFromBytes(a, res.body, method, `the key served at ${url.split('?')[0]}`)
}

/** OPENPGPKEY (RFC 7929): NXDOMAIN/no record -> notfound; SERVFAIL or timeout -> error. */
export async function fetchOpenpgpkey(
  a: MailAddress,
  deps: RemoteDeps,
  signal?: AbortSignal,
): Promise<MethodOutcome> {
  const method = 'openpgpkey'
  const name = openpgpkeyName(a)
  let answer
  try {
    answer = await deps.dns.query(name, 'OPENPGPKEY', { signal })
  } catch (e) {
    return {
      outcome: 'error',
      method,
      reason: isLinksecError(e) ? describeError(e) : `DNS lookup of ${name} failed`,
    }
  }
  if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN')
    return { outcome: 'error', method, reason: `DNS ${answer.rcode} for ${name}` }
  const data = answer.records.flatMap((r) => (r.type === 'OPENPGPKEY' ? [r.data] : []))
  if (data.length === 0) return { outcome: 'notfound', method, reason: 'no OPENPGPKEY record' }
  if (!answer.authenticated)
    return { outcome: 'insecure', method, reason: `OPENPGPKEY for ${name} is not DNSSEC-authenticated` }
  return keysFromBytes(a, Buffer.concat(data), method, `the OPENPGPKEY record ${name}`)
}

async function keysFromBytes(
  a: MailAddress,
  body: Buffer,
  method: RemoteMethod,
  what: string,
): Promise<MethodOutcome> {
  let keys
  try {
    keys = await readKeyBlob(body)
  } catch (e) {
    return {
      outcome: 'unusable',
      method,
      result: 'neutral',
      reason: `${what} is not an OpenPGP key (${describeError(e)}); the key server's fault, not the sender's`,
    }
  }
  const ring = ringFor(a.address, keys)
  if (ring.keys.length === 0)
    return {
      outcome: 'unusable',
      method,
      result: 'neutral',
      reason: `${what} has no user ID for ${a.address}; the key server's fault, not the sender's`,
    }
  return { outcome: 'found', method, ring }
}
