/**
 * Domain names and Postfix next-hop keys. Names come from strangers (DNS,
 * EHLO, socketmap keys), so they are checked before they reach a query or a
 * cache key: LDH labels, at most 253 octets, lower case, no trailing dot.
 */
import * as net from 'node:net'

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/
/** Underscore labels (_mta-sts, _25._tcp) are never accepted from input; only we build them. */
const MAX_DOMAIN_LENGTH = 253

/** Lower-cased name without its trailing dot, or undefined if it is not a host/domain name. */
export function normalizeDomain(input: string): string | undefined {
  const name = input.trim().toLowerCase().replace(/\.$/, '')
  if (name.length === 0 || name.length > MAX_DOMAIN_LENGTH) return undefined
  if (net.isIP(name)) return undefined
  const labels = name.split('.')
  if (labels.length < 2) return undefined
  if (!labels.every((l) => LABEL.test(l))) return undefined
  // A numeric top-level label is an address in disguise, never a domain.
  if (/^\d+$/.test(labels[labels.length - 1]!)) return undefined
  return name
}

export type NextHop =
  | { kind: 'domain'; domain: string }
  /** `[host]` or `[host]:port`: Postfix skips MX lookup and goes to this host. */
  | { kind: 'host'; domain: string; port?: number }
  | { kind: 'address'; address: string }
  | { kind: 'invalid' }

/**
 * Parses a Postfix smtp_tls_policy_maps key: `example.com`, `example.com:587`,
 * `[mx.example.com]:25`, `[192.0.2.1]` (postconf(5): the next-hop destination,
 * verbatim). An IP literal has no policy domain.
 */
export function parseNextHop(key: string): NextHop {
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(key.trim())
  if (bracket) {
    const inner = bracket[1]!.replace(/^ipv6:/i, '')
    if (net.isIP(inner)) return { kind: 'address', address: inner }
    const domain = normalizeDomain(inner)
    if (!domain) return { kind: 'invalid' }
    return bracket[2] ? { kind: 'host', domain, port: Number(bracket[2]) } : { kind: 'host', domain }
  }
  const plain = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(key.trim())
  if (!plain) return net.isIP(key.trim()) ? { kind: 'address', address: key.trim() } : { kind: 'invalid' }
  if (net.isIP(plain[1]!)) return { kind: 'address', address: plain[1]! }
  const domain = normalizeDomain(plain[1]!)
  return domain ? { kind: 'domain', domain } : { kind: 'invalid' }
}
