/**
 * Where mail for a domain goes (RFC 5321 §5.1), asked of linksec's own DNS
 * (`[resolver] servers`, never the system resolver): the MX hosts by
 * preference, each with its addresses; no MX record means the domain itself
 * (the implicit MX); a null MX (RFC 7505, ".") means the domain takes no
 * mail. Addresses that are not public are dropped unless `[net]
 * allow_private_addresses` is on, so a hostile zone cannot point delivery
 * at this machine's neighbours.
 */
import { isAllowedAddress } from '../net/addresses'
import type { DnsClient, DnsRecord } from '../net/types'

export interface MxHost {
  name: string
  preference: number
  addresses: string[]
}

export type MxRoute =
  | { kind: 'hosts'; hosts: MxHost[]; implicit: boolean }
  /** Permanent: no such domain, a null MX, or only refused addresses. */
  | { kind: 'none'; reason: string }
  | { kind: 'temp'; reason: string }

class Temp extends Error {}

/** A and AAAA of NAME; throws (a temporary failure) when a lookup fails. */
export async function addressesOf(dns: DnsClient, name: string): Promise<string[]> {
  const out: string[] = []
  for (const type of ['A', 'AAAA'] as const) {
    const a = await dns.query(name, type).catch((e: unknown) => {
      throw new Temp(`the ${type} lookup of ${name} failed: ${e instanceof Error ? e.message : String(e)}`)
    })
    if (a.rcode === 'SERVFAIL' || a.rcode === 'REFUSED')
      throw new Temp(`the ${type} lookup of ${name} answered ${a.rcode}`)
    for (const r of a.records) if (r.type === 'A' || r.type === 'AAAA') out.push(r.address)
  }
  return out
}

export async function resolveMx(
  dns: DnsClient,
  domain: string,
  opts: { allowPrivate: boolean },
): Promise<MxRoute> {
  try {
    const mx = await dns.query(domain, 'MX').catch((e: unknown) => {
      throw new Temp(`the MX lookup of ${domain} failed: ${e instanceof Error ? e.message : String(e)}`)
    })
    if (mx.rcode === 'SERVFAIL' || mx.rcode === 'REFUSED')
      return { kind: 'temp', reason: `the MX lookup of ${domain} answered ${mx.rcode}` }
    if (mx.rcode === 'NXDOMAIN')
      return { kind: 'none', reason: `the domain ${domain} does not exist (NXDOMAIN)` }
    const records = mx.records.filter((r): r is Extract<DnsRecord, { type: 'MX' }> => r.type === 'MX')
    if (records.some((r) => r.exchange === '' || r.exchange === '.'))
      return { kind: 'none', reason: `${domain} publishes a null MX: it accepts no mail (RFC 7505)` }
    const implicit = records.length === 0
    const wanted = implicit
      ? [{ name: domain, preference: 0 }]
      : records
          .map((r) => ({ name: r.exchange.replace(/\.$/, '').toLowerCase(), preference: r.priority }))
          .sort((a, b) => a.preference - b.preference)
    const hosts: MxHost[] = []
    const refused: string[] = []
    for (const w of wanted) {
      const all = await addressesOf(dns, w.name)
      const ok = all.filter((ip) => isAllowedAddress(ip, opts.allowPrivate))
      refused.push(...all.filter((ip) => !ok.includes(ip)).map((ip) => `${w.name} [${ip}]`))
      if (ok.length) hosts.push({ ...w, addresses: ok })
    }
    if (hosts.length) return { kind: 'hosts', hosts, implicit }
    if (refused.length)
      return {
        kind: 'none',
        reason: `the mail servers of ${domain} are on private addresses (${refused.join(', ')}); set [net] allow_private_addresses=true to deliver there`,
      }
    return {
      kind: 'none',
      reason: implicit
        ? `${domain} has no MX and no address record`
        : `no MX host of ${domain} has an address (${wanted.map((w) => w.name).join(', ')})`,
    }
  } catch (e) {
    if (e instanceof Temp) return { kind: 'temp', reason: e.message }
    throw e
  }
}
