/**
 * DnsClient over dns-packet: UDP first (random id, fresh source port, EDNS0
 * with DO), TCP when the reply is truncated, the next server on timeout,
 * network error, malformed reply, SERVFAIL or REFUSED. The whole query,
 * over every server, stays within timeoutMs (and the caller's signal).
 *
 * `authenticated` is the AD bit, believed only when trustAd says the path to
 * a validating resolver is trusted (RFC 6698 §4.1 / RFC 7672 §2.1.1 leave
 * that to the operator: a local validating resolver).
 */
import { deadline } from './deadline'
import { randomInt } from 'node:crypto'
import { isLinksecError, LinksecError } from '../errors'
import { engineService, sectionsKey } from '../engine'
import { encodeQuery, normalizeName, type Expected } from './dns-wire'
import { label, tcpExchange, timeoutError, udpExchange, type ServerAddress } from './dns-transport'
import { parseServer, systemServers } from './servers'
import type { DnsAnswer, DnsClient, DnsQueryOptions, DnsType } from './types'

export interface DnsClientOptions {
  /** HOST:PORT, [v6]:PORT or bare IPs; empty = /etc/resolv.conf (read at the first query). */
  servers: readonly string[]
  /** Deadline for one query over all servers (ms). */
  timeoutMs: number
  /** Believe the AD bit (the servers are validating resolvers on a trusted path). */
  trustAd: boolean
  /** Largest reply accepted (bytes, at most 65535). */
  maxResponseBytes?: number
  /** resolv.conf to read when servers is empty (tests). */
  resolvConf?: string
}

type Reply = Awaited<ReturnType<typeof udpExchange>>

/** Replies worth asking another server about (RFC 1035 §7.2: a server may be broken). */
const TRY_NEXT = new Set(['SERVFAIL', 'REFUSED'])

export function createDnsClient(opts: DnsClientOptions): DnsClient {
  const configured = opts.servers.map(parseServer)
  let system: ServerAddress[] | undefined
  const servers = () => (configured.length ? configured : (system ??= systemServers(opts.resolvConf)))
  const maxBytes = Math.min(opts.maxResponseBytes ?? 65535, 65535)

  async function askOne(
    server: ServerAddress,
    name: string,
    type: DnsType,
    signal: AbortSignal,
    share: number,
  ) {
    const expected: Expected = { id: randomInt(65536), name, type }
    const query = encodeQuery(expected)
    const reply = await udpExchange(server, query, expected, signal, maxBytes, Math.max(1, share / 2))
    if (!reply.truncated) return reply
    // RFC 7766 §5: a truncated UDP reply is retried over TCP, with a fresh id.
    const again: Expected = { ...expected, id: randomInt(65536) }
    return tcpExchange(server, encodeQuery(again), again, signal, maxBytes)
  }

  async function query(name: string, type: DnsType, q: DnsQueryOptions = {}): Promise<DnsAnswer> {
    const qname = normalizeName(name)
    const list = servers()
    const end = Date.now() + opts.timeoutMs
    const overall = deadline(opts.timeoutMs, q.signal)
    try {
      let lastReply: Reply | undefined
      let lastError: LinksecError | undefined
      for (let i = 0; i < list.length && !overall.signal.aborted; i++) {
        // Each server gets an equal share of what is left; the last one gets all of it.
        const share = Math.max(1, Math.floor((end - Date.now()) / (list.length - i)))
        const attempt = deadline(share, overall.signal)
        try {
          const reply = await askOne(list[i]!, qname, type, attempt.signal, share)
          if (!TRY_NEXT.has(reply.rcode)) return toAnswer(reply, opts.trustAd)
          lastReply = reply
        } catch (e) {
          lastError = asDnsError(e, list[i]!, share)
        } finally {
          attempt.dispose()
        }
      }
      if (lastReply) return toAnswer(lastReply, opts.trustAd)
      if (overall.signal.aborted || !lastError) throw deadlineError(qname, type, opts.timeoutMs, list)
      throw lastError
    } finally {
      overall.dispose()
    }
  }

  return { query }
}

/** Unexpected errors (a socket refusing an address, say) become network errors, never a crash. */
function asDnsError(e: unknown, server: ServerAddress, share: number): LinksecError {
  if (!isLinksecError(e))
    return new LinksecError('LINKSEC_DNS_NETWORK', `DNS query to ${label(server)} failed: ${String(e)}`, {
      cause: e,
    })
  return e.code === 'LINKSEC_DNS_TIMEOUT' ? timeoutError(server, share) : e
}

function toAnswer(reply: Reply, trustAd: boolean): DnsAnswer {
  return { rcode: reply.rcode, authenticated: reply.ad && trustAd, records: reply.records }
}

function deadlineError(name: string, type: DnsType, ms: number, servers: ServerAddress[]): LinksecError {
  return new LinksecError(
    'LINKSEC_DNS_TIMEOUT',
    `no DNS answer for ${name}/${type} within ${ms} ms from ${servers.map(label).join(', ')}`,
  )
}

/** The DnsClient for [resolver] (one per engine), or the one the engine was given. */
export const dnsClientFor = engineService<DnsClient>({
  name: 'dns',
  key: (c) => sectionsKey(c, ['resolver']),
  build: (rt) =>
    rt.engine.deps.dns ??
    createDnsClient({
      servers: rt.config.resolver.servers,
      timeoutMs: rt.config.resolver.timeout_ms,
      trustAd: rt.config.resolver.trust_ad,
    }),
})
