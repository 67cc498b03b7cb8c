/**
 * Where DNS queries go: [resolver] servers (HOST:PORT, [v6]:PORT or a bare
 * address), or the nameservers of /etc/resolv.conf when none are given.
 * Servers must be IP addresses: a resolver's own name cannot be resolved
 * without a resolver, and the system one may be off the machine.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import { ConfigError, LinksecError } from '../errors'
import type { ServerAddress } from './dns-transport'

/** Parses "127.0.0.1:5353", "[::1]:53", "::1" or "10.0.0.1" (port 53 when absent). */
export function parseServer(spec: string): ServerAddress {
  const s = spec.trim()
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s)
  const v4 = /^([^:]+)(?::(\d{1,5}))?$/.exec(s)
  const [host, port] = v6 ? [v6[1]!, v6[2]] : v4 ? [v4[1]!, v4[2]] : [s, undefined]
  if (!net.isIP(host)) {
    throw new ConfigError(
      `[resolver] servers: "${spec}" is not an IP address with an optional port; write e.g. 127.0.0.1:53 or [::1]:53`,
    )
  }
  const p = port === undefined ? 53 : Number(port)
  if (p < 1 || p > 65535) throw new ConfigError(`[resolver] servers: port ${p} in "${spec}" is out of range`)
  return { host, port: p }
}

/** The `nameserver` lines of a resolv.conf text (scoped IPv6 addresses keep their zone). */
export function parseResolvConf(text: string): ServerAddress[] {
  const out: ServerAddress[] = []
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line)
    if (m && net.isIP(m[1]!.replace(/%.*$/, ''))) out.push({ host: m[1]!, port: 53 })
  }
  return out
}

/** Set by test helpers: a client with no servers must not fall back to the system resolver. */
export const FORBID_SYSTEM_RESOLVER_ENV = 'LINKSEC_FORBID_SYSTEM_RESOLVER'

export function systemServers(file = '/etc/resolv.conf'): ServerAddress[] {
  if (process.env[FORBID_SYSTEM_RESOLVER_ENV]) {
    throw new LinksecError(
      'LINKSEC_DNS_SYSTEM_FORBIDDEN',
      `no [resolver] servers given and ${FORBID_SYSTEM_RESOLVER_ENV} is set (tests must use a loopback DNS server)`,
      { temporary: false },
    )
  }
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    throw new LinksecError('LINKSEC_DNS_NETWORK', `cannot read ${file}; set [resolver] servers`, { cause: e })
  }
  const servers = parseResolvConf(text)
  if (servers.length === 0)
    throw new LinksecError('LINKSEC_DNS_NETWORK', `no nameserver in ${file}; set [resolver] servers`)
  return servers
}
