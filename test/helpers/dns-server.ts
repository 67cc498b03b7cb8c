/**
 * An in-process authoritative DNS server on 127.0.0.1 (UDP and TCP on one
 * random port) for tests. The zone is plain data and may be changed while the
 * server runs ("refresh fails" tests):
 *
 *   const dns = await startDnsServer({
 *     'mta-sts.example.test': { A: ['127.0.0.1'] },
 *     '_mta-sts.example.test': { TXT: ['v=STSv1; id=1;'] },
 *     'slow.example.test': { A: ['127.0.0.1'], fault: 'timeout' },
 *   }, { ad: true })
 *   dns.address                       // '127.0.0.1:PORT' for [resolver] servers
 *   dns.set('x.test', { TXT: [['part1', 'part2']] })   // one record, two strings
 *   dns.queries                       // [{ name, type, transport }] as asked
 *   await dns.close()
 *
 * Names absent from the zone get NXDOMAIN (NOERROR/empty when a longer name
 * exists below them). Faults per name: 'timeout' (never answers), 'servfail',
 * 'refused', 'malformed' (garbage with the right id), 'truncate' (UDP answers
 * TC, TCP answers in full), 'spoof' (a reply with a wrong id first, then the
 * real one). `ad` sets the AD bit on every answer; a name's `secure` overrides it.
 */
import * as dgram from 'node:dgram'
import * as net from 'node:net'
import * as dnsPacket from 'dns-packet'
import { FORBID_SYSTEM_RESOLVER_ENV } from '../../core/net/servers'

// A test that uses this server must never reach the system resolver (it is off the machine).
process.env[FORBID_SYSTEM_RESOLVER_ENV] = '1'

export type DnsFault = 'timeout' | 'servfail' | 'refused' | 'malformed' | 'truncate' | 'spoof'

export interface TlsaData {
  usage: number
  selector: number
  matchingType: number
  data: Buffer
}

export interface ZoneEntry {
  A?: string[]
  AAAA?: string[]
  /** "10 mx.example.test" or { priority, exchange }. */
  MX?: (string | { priority: number; exchange: string })[]
  /** A string is one record of one character-string; an array is one record of several. */
  TXT?: (string | string[])[]
  TLSA?: TlsaData[]
  OPENPGPKEY?: Buffer[]
  CNAME?: string
  ttl?: number
  fault?: DnsFault
  /** AD bit for this name (overrides the server's `ad`). */
  secure?: boolean
}

export type Zone = Record<string, ZoneEntry>

export interface DnsQueryLog {
  name: string
  type: string
  transport: 'udp' | 'tcp'
}

export interface TestDnsServer {
  readonly host: string
  readonly port: number
  /** 'HOST:PORT' as [resolver] servers wants it. */
  readonly address: string
  /** Set the AD bit on answers (a validating resolver). */
  ad: boolean
  readonly zone: Zone
  readonly queries: DnsQueryLog[]
  set(name: string, entry: ZoneEntry): void
  remove(name: string): void
  fault(name: string, fault: DnsFault | undefined): void
  /** Queries for NAME (any type), e.g. to assert a lookup was (not) made. */
  asked(name: string, type?: string): number
  close(): Promise<void>
}

const norm = (n: string) => n.toLowerCase().replace(/\.$/, '')
const WIRE_TYPES: Record<string, keyof ZoneEntry> = {
  A: 'A',
  AAAA: 'AAAA',
  MX: 'MX',
  TXT: 'TXT',
  TLSA: 'TLSA',
  UNKNOWN_61: 'OPENPGPKEY',
  CNAME: 'CNAME',
}

function recordsOf(owner: string, entry: ZoneEntry, wireType: string): dnsPacket.Answer[] {
  const ttl = entry.ttl ?? 300
  const base = { name: owner, ttl, class: 'IN' as const }
  const key = WIRE_TYPES[wireType]
  if (!key) return []
  const a = (type: string, data: unknown) => ({ ...base, type, data }) as unknown as dnsPacket.Answer
  switch (key) {
    case 'A':
    case 'AAAA':
      return (entry[key] ?? []).map((ip) => a(key, ip))
    case 'MX':
      return (entry.MX ?? []).map((mx) => {
        const [p, x] = typeof mx === 'string' ? mx.split(/\s+/) : [String(mx.priority), mx.exchange]
        return a('MX', { preference: Number(p), exchange: x })
      })
    case 'TXT':
      return (entry.TXT ?? []).map((t) =>
        a(
          'TXT',
          (Array.isArray(t) ? t : [t]).map((s) => Buffer.from(s)),
        ),
      )
    case 'TLSA':
      return (entry.TLSA ?? []).map((t) => a('TLSA', { ...t, certificate: t.data }))
    case 'OPENPGPKEY':
      return (entry.OPENPGPKEY ?? []).map((k) => a('UNKNOWN_61', k))
    case 'CNAME':
      return entry.CNAME ? [a('CNAME', entry.CNAME)] : []
  }
  return []
}

interface Resolved {
  rcode: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED'
  answers: dnsPacket.Answer[]
  fault?: DnsFault
  secure?: boolean
}

function resolve(zone: Zone, qname: string, qtype: string): Resolved {
  const entry = zone[qname]
  if (entry?.fault === 'servfail') return { rcode: 'SERVFAIL', answers: [], fault: entry.fault }
  if (entry?.fault === 'refused') return { rcode: 'REFUSED', answers: [], fault: entry.fault }
  if (!entry) {
    const below = Object.keys(zone).some((n) => n.endsWith(`.${qname}`))
    return { rcode: below ? 'NOERROR' : 'NXDOMAIN', answers: [] }
  }
  const answers: dnsPacket.Answer[] = []
  let owner = qname
  let cur: ZoneEntry | undefined = entry
  // Follow CNAMEs inside the zone, as a recursive resolver would (bounded).
  for (let hops = 0; cur && cur.CNAME && qtype !== 'CNAME' && hops < 8; hops++) {
    answers.push(...recordsOf(owner, cur, 'CNAME'))
    owner = norm(cur.CNAME)
    cur = zone[owner]
  }
  if (cur) answers.push(...recordsOf(owner, cur, qtype))
  return { rcode: 'NOERROR', answers, fault: entry.fault, secure: entry.secure }
}

function encodeReply(
  query: dnsPacket.DecodedPacket,
  res: Resolved,
  opts: { ad: boolean; tc: boolean },
): Buffer {
  const flags =
    dnsPacket.RECURSION_DESIRED |
    dnsPacket.RECURSION_AVAILABLE |
    (opts.ad ? dnsPacket.AUTHENTIC_DATA : 0) |
    (opts.tc ? dnsPacket.TRUNCATED_RESPONSE : 0)
  const rcodeBits = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 }[res.rcode]
  return dnsPacket.encode({
    type: 'response',
    id: query.id,
    flags: flags | rcodeBits,
    questions: query.questions,
    answers: opts.tc ? [] : res.answers,
  })
}

/** The UDP payload size the query advertised (RFC 6891), or 512 without EDNS. */
function udpLimit(query: dnsPacket.DecodedPacket): number {
  const opt = (query.additionals ?? []).find((a) => a.type === 'OPT') as
    { udpPayloadSize?: number } | undefined
  return Math.max(512, opt?.udpPayloadSize ?? 512)
}

/** UDP and TCP on the same random port (retrying when the TCP side of a UDP port is taken). */
async function bindPair(
  host: string,
  fixedPort: number,
  onUdp: (udp: dgram.Socket) => (msg: Buffer, rinfo: dgram.RemoteInfo) => void,
  onTcp: (sock: net.Socket) => void,
): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const udp = dgram.createSocket('udp4')
    udp.on('message', onUdp(udp))
    const port = await new Promise<number>((res, rej) => {
      udp.once('error', rej)
      udp.bind(fixedPort, host, () => res(udp.address().port))
    })
    udp.on('error', () => {})
    const tcp = net.createServer(onTcp)
    const ok = await new Promise<boolean>((res) => {
      tcp.once('error', () => res(false))
      tcp.listen(port, host, () => res(true))
    })
    if (ok) return { udp, tcp, port }
    udp.close()
    if (fixedPort || attempt >= 20)
      throw new Error(`no port free for UDP and TCP on ${host}:${fixedPort || '*'}`)
  }
}

export async function startDnsServer(
  initial: Zone = {},
  /**
   * port: a fixed one (e.g. 53 inside a network namespace, or on a loopback
   * address of its own for a peer that reads resolv.conf); default a random
   * free one. host: the loopback address to bind (default 127.0.0.1).
   */
  opts: { ad?: boolean; port?: number; host?: string } = {},
): Promise<TestDnsServer> {
  const host = opts.host ?? '127.0.0.1'
  const zone: Zone = {}
  for (const [n, e] of Object.entries(initial)) zone[norm(n)] = { ...e }
  const queries: DnsQueryLog[] = []
  const tcpSockets = new Set<net.Socket>()
  const state = { ad: opts.ad ?? false }

  /** Answers one query; undefined = stay silent. */
  function answer(msg: Buffer, transport: 'udp' | 'tcp'): Buffer[] | undefined {
    let query: dnsPacket.DecodedPacket
    try {
      query = dnsPacket.decode(msg)
    } catch {
      return undefined
    }
    const q = query.questions?.[0]
    if (!q) return undefined
    const qname = norm(q.name)
    queries.push({
      name: qname,
      type: (q.type as string) === 'UNKNOWN_61' ? 'OPENPGPKEY' : q.type,
      transport,
    })
    const res = resolve(zone, qname, q.type)
    if (res.fault === 'timeout') return undefined
    if (res.fault === 'malformed') {
      // Our id, then a header cut short: no decoder can make sense of it.
      return [Buffer.from([msg[0]!, msg[1]!, 0x81, 0x80, 0, 1, 0, 5, 0xff, 0xff, 0xc0])]
    }
    const ad = res.secure ?? state.ad
    let reply = encodeReply(query, res, { ad, tc: transport === 'udp' && res.fault === 'truncate' })
    if (transport === 'udp' && reply.length > udpLimit(query))
      reply = encodeReply(query, res, { ad, tc: true })
    if (res.fault === 'spoof') {
      const spoof = Buffer.from(reply)
      spoof.writeUInt16BE((query.id! + 1) & 0xffff, 0)
      return [spoof, reply]
    }
    return [reply]
  }

  const onUdp = (udp: dgram.Socket) => (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    for (const out of answer(msg, 'udp') ?? []) udp.send(out, rinfo.port, rinfo.address)
  }
  const { udp, tcp, port } = await bindPair(host, opts.port ?? 0, onUdp, (sock) => {
    tcpSockets.add(sock)
    sock.on('close', () => tcpSockets.delete(sock))
    sock.on('error', () => {})
    let buf = Buffer.alloc(0)
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0)
        const msg = buf.subarray(2, 2 + len)
        buf = buf.subarray(2 + len)
        for (const out of answer(msg, 'tcp') ?? []) {
          const prefix = Buffer.alloc(2)
          prefix.writeUInt16BE(out.length)
          sock.write(Buffer.concat([prefix, out]))
        }
      }
    })
  })

  return {
    host,
    port,
    address: `${host}:${port}`,
    get ad() {
      return state.ad
    },
    set ad(v: boolean) {
      state.ad = v
    },
    zone,
    queries,
    set: (name, entry) => void (zone[norm(name)] = { ...entry }),
    remove: (name) => {
      delete zone[norm(name)]
    },
    fault(name, fault) {
      const n = norm(name)
      zone[n] = { ...(zone[n] ?? {}), fault }
    },
    asked: (name, type) => queries.filter((q) => q.name === norm(name) && (!type || q.type === type)).length,
    async close() {
      for (const s of tcpSockets) s.destroy()
      await new Promise<void>((res) => tcp.close(() => res()))
      await new Promise<void>((res) => udp.close(() => res()))
    },
  }
}
