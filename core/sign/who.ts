/**
 * Who is signed (pure): mail whose one From address is in one of this
 * server's domains, sent by an authenticated client allowed to use that
 * From (the login itself, or listed in the senders file) or by a client in
 * `[sign] trusted_networks`. Whether a key is held is asked afterwards.
 */
import * as net from 'node:net'
import { namedDomains } from '../address'
import { fromAddress } from '../keys/address'
import type { Senders } from './senders'

export interface SubmissionFacts {
  /** The message's From field values (normally one). */
  from: readonly string[]
  /** The SASL login (milter {auth_authen}, Haraka auth_user); absent when not authenticated. */
  login?: string
  /** The client's IP address. */
  clientAddress?: string
  /**
   * The MTA relays for this client without a login (Haraka `connection.relaying`
   * set by its relay ACL): trusted like [sign] trusted_networks.
   */
  relaying?: boolean
}

export interface SignerScope {
  /** Lower-cased domains signed for. */
  domains: ReadonlySet<string>
  trusted: net.BlockList
  senders: Senders
}

export type WhoDecision =
  | { sign: true; address: string; via: 'login' | 'senders_file' | 'trusted_network' | 'relaying' }
  | { sign: false; outcome: 'not_ours' | 'not_allowed'; reason: string; address?: string }

export function whoSigns(f: SubmissionFacts, scope: SignerScope): WhoDecision {
  const from = f.from.length === 1 ? fromAddress(f.from[0]!) : undefined
  if (!from && !namesOurDomain(f.from, scope))
    return {
      sign: false,
      outcome: 'not_ours',
      reason: 'the From address is not in a domain this server signs for',
    }
  if (!from)
    return {
      sign: false,
      outcome: 'not_allowed',
      reason: 'the From field must hold exactly one address to be signed',
    }
  const address = from.address.toLowerCase()
  if (!scope.domains.has(from.domain))
    return { sign: false, outcome: 'not_ours', reason: `${address} is not in a domain this server signs for` }
  if (f.login) {
    const via = scope.senders.allows(f.login, from)
    if (via) return { sign: true, address, via }
  }
  if (!f.login && f.relaying) return { sign: true, address, via: 'relaying' }
  if (f.clientAddress && isTrusted(scope.trusted, f.clientAddress))
    return { sign: true, address, via: 'trusted_network' }
  const reason = f.login
    ? `the login ${f.login} may not send as ${address} (list it in [sign] senders_file)`
    : `the client is neither authenticated nor in [sign] trusted_networks`
  return { sign: false, outcome: 'not_allowed', reason, address }
}

/** A From that is not one mailbox may still claim one of our domains (then it is ours, and not allowed). */
function namesOurDomain(from: readonly string[], scope: SignerScope): boolean {
  return namedDomains(from).some((d) => scope.domains.has(d))
}

function isTrusted(list: net.BlockList, ip: string): boolean {
  const family = net.isIP(ip.replace(/^\[|\]$/g, ''))
  if (family === 0) return false
  const addr = ip.replace(/^\[|\]$/g, '')
  return list.check(addr, family === 6 ? 'ipv6' : 'ipv4')
}

/** `[sign] trusted_networks` as a BlockList (node:net), "a.b.c.d" alone meaning one host. */
export function trustedNetworks(cidrs: readonly string[]): net.BlockList {
  const list = new net.BlockList()
  for (const c of cidrs) {
    const [ip, bits] = c.split('/') as [string, string | undefined]
    const type = net.isIP(ip) === 6 ? 'ipv6' : 'ipv4'
    if (net.isIP(ip) === 0) throw new Error(`"${c}" is not an address or network`)
    const max = type === 'ipv6' ? 128 : 32
    const prefix = bits === undefined ? max : Number(bits)
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max)
      throw new Error(`"${c}": the prefix must be 0-${max}`)
    list.addSubnet(ip, prefix, type)
  }
  return list
}
