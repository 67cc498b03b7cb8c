/**
 * DNS messages for the client: build a query, and judge a reply with no I/O
 * (so the parse path is unit-tested and fuzzed on bytes alone). A reply that
 * is not for our query (other id, other question, not a response) is
 * ignored, as RFC 5452 §9.1 asks; a reply for our query that cannot be
 * decoded is LINKSEC_DNS_MALFORMED.
 */
import * as net from 'node:net'
import * as dnsPacket from 'dns-packet'
import { LinksecError } from '../errors'
import type { DnsRcode, DnsRecord, DnsType } from './types'

/** RFC 8906-era advice (DNS flag day 2020): 1232 bytes avoids IP fragmentation. */
const EDNS_UDP_PAYLOAD = 1232
/** CNAME links followed inside one answer before we give up on the chain. */
const MAX_CHAIN = 16

/** dns-packet's name for each type; OPENPGPKEY (61, RFC 7929) is unknown to it. */
const WIRE_TYPE: Record<DnsType, string> = {
  A: 'A',
  AAAA: 'AAAA',
  MX: 'MX',
  TXT: 'TXT',
  TLSA: 'TLSA',
  OPENPGPKEY: 'UNKNOWN_61',
  CNAME: 'CNAME',
}

export interface Expected {
  id: number
  name: string
  type: DnsType
}

export type Judged =
  | { kind: 'ignore'; why: string }
  | { kind: 'reply'; truncated: boolean; rcode: DnsRcode; ad: boolean; records: DnsRecord[] }

export function malformed(why: string, cause?: unknown): LinksecError {
  return new LinksecError('LINKSEC_DNS_MALFORMED', `malformed DNS reply: ${why}`, { cause })
}

/**
 * Lower-cases NAME, drops one trailing dot and checks RFC 1035 limits
 * (labels 1-63 octets, name <= 253). Throws LINKSEC_DNS_BAD_NAME (permanent).
 */
export function normalizeName(name: string): string {
  const n = name.trim().toLowerCase().replace(/\.$/, '')
  const bad = (why: string) =>
    new LinksecError('LINKSEC_DNS_BAD_NAME', `cannot look up "${name}": ${why}`, { temporary: false })
  if (n.length === 0) throw bad('the name is empty')
  if (Buffer.byteLength(n) > 253) throw bad('the name is longer than 253 octets')
  if (/[\x00-\x20\x7f]/.test(n)) throw bad('the name holds control characters or spaces')
  for (const label of n.split('.')) {
    if (label.length === 0) throw bad('the name has an empty label')
    if (Buffer.byteLength(label) > 63) throw bad('a label is longer than 63 octets')
  }
  return n
}

/** A recursive query with EDNS0 and the DO bit, so a validating resolver reports AD (RFC 6840 §5.7). */
export function encodeQuery(q: Expected): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ type: WIRE_TYPE[q.type] as dnsPacket.RecordType, name: q.name, class: 'IN' }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: EDNS_UDP_PAYLOAD,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: dnsPacket.DNSSEC_OK,
        flag_do: true,
        options: [],
      },
    ],
  })
}

const RCODES: readonly DnsRcode[] = ['NOERROR', 'NXDOMAIN', 'SERVFAIL', 'REFUSED', 'FORMERR', 'NOTIMP']

function toRcode(s: string): DnsRcode {
  return (RCODES as readonly string[]).includes(s) ? (s as DnsRcode) : 'OTHER'
}

const lower = (s: unknown) => String(s).toLowerCase().replace(/\.$/, '')

/** Decides whether BUF answers EXPECTED, and if so what it says. */
export function judgeReply(buf: Buffer, expected: Expected): Judged {
  if (buf.length < 2 || buf.readUInt16BE(0) !== expected.id) return { kind: 'ignore', why: 'id mismatch' }
  checkCounts(buf)
  let pkt: dnsPacket.DecodedPacket
  try {
    pkt = dnsPacket.decode(buf)
  } catch (e) {
    throw malformed(`cannot decode ${buf.length} bytes`, e)
  }
  if (!pkt.flag_qr) return { kind: 'ignore', why: 'not a response' }
  const q = pkt.questions?.[0]
  const wireType = WIRE_TYPE[expected.type]
  if (pkt.questions?.length !== 1 || !q || lower(q.name) !== expected.name || q.type !== wireType)
    return { kind: 'ignore', why: 'question mismatch' }
  const rcode = toRcode(String((pkt as { rcode?: unknown }).rcode))
  const records = rcode === 'NOERROR' && !pkt.flag_tc ? collectRecords(pkt, expected) : []
  return { kind: 'reply', truncated: pkt.flag_tc, rcode, ad: pkt.flag_ad, records }
}

/**
 * Section counts a reply of this size cannot hold (a question takes at least
 * 5 bytes, a record 11) are malformed; checked before the decoder allocates
 * arrays for up to 4 x 65535 entries.
 */
function checkCounts(buf: Buffer): void {
  if (buf.length < 12) throw malformed(`${buf.length}-byte reply is shorter than a DNS header`)
  const [qd, an, ns, ar] = [4, 6, 8, 10].map((at) => buf.readUInt16BE(at)) as [number, number, number, number]
  if (12 + qd * 5 + (an + ns + ar) * 11 > buf.length)
    throw malformed(`section counts ${qd}/${an}/${ns}/${ar} do not fit in ${buf.length} bytes`)
}

type RawAnswer = { type?: unknown; name?: unknown; ttl?: unknown; class?: unknown; data?: unknown }

/** Records of the asked type whose owner is QNAME or a CNAME target reached from it. */
function collectRecords(pkt: dnsPacket.DecodedPacket, expected: Expected): DnsRecord[] {
  const answers = (pkt.answers ?? []) as RawAnswer[]
  const owners = new Set([expected.name])
  if (expected.type !== 'CNAME') followCnames(answers, owners)
  const wireType = WIRE_TYPE[expected.type]
  return answers
    .filter((a) => a.type === wireType && (a.class ?? 'IN') === 'IN' && owners.has(lower(a.name)))
    .map((a) => toRecord(expected.type, a))
}

function followCnames(answers: RawAnswer[], owners: Set<string>): void {
  for (let i = 0; i < MAX_CHAIN; i++) {
    const grow = answers.filter(
      (a) => a.type === 'CNAME' && owners.has(lower(a.name)) && !owners.has(lower(a.data)),
    )
    if (grow.length === 0) return
    for (const a of grow) owners.add(lower(a.data))
  }
}

function toRecord(type: DnsType, a: RawAnswer): DnsRecord {
  const base = { name: lower(a.name), ttl: typeof a.ttl === 'number' ? a.ttl : 0 }
  const d = a.data
  switch (type) {
    case 'A':
    case 'AAAA':
      if (typeof d !== 'string' || net.isIP(d) !== (type === 'A' ? 4 : 6)) throw malformed(`bad ${type} data`)
      return { type, ...base, address: d }
    case 'MX': {
      const mx = d as { preference?: unknown; exchange?: unknown } | undefined
      if (typeof mx?.preference !== 'number' || typeof mx.exchange !== 'string')
        throw malformed('bad MX data')
      return { type, ...base, priority: mx.preference, exchange: lower(mx.exchange) }
    }
    case 'TXT':
      return { type, ...base, text: joinTxt(d) }
    case 'TLSA':
      return { type, ...base, ...tlsaData(d) }
    case 'OPENPGPKEY':
      if (!Buffer.isBuffer(d)) throw malformed('bad OPENPGPKEY data')
      return { type, ...base, data: Buffer.from(d) }
    case 'CNAME':
      if (typeof d !== 'string') throw malformed('bad CNAME data')
      return { type, ...base, target: lower(d) }
  }
}

/** The character-strings of ONE TXT record, joined without a separator (RFC 7208 §3.3, RFC 8461 §3.1). */
function joinTxt(d: unknown): string {
  const parts = Array.isArray(d) ? d : [d]
  if (!parts.every((p) => Buffer.isBuffer(p) || typeof p === 'string')) throw malformed('bad TXT data')
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))).toString('utf8')
}

function tlsaData(d: unknown): { usage: number; selector: number; matchingType: number; data: Buffer } {
  const t = d as { usage?: unknown; selector?: unknown; matchingType?: unknown; certificate?: unknown }
  if (
    typeof t?.usage !== 'number' ||
    typeof t.selector !== 'number' ||
    typeof t.matchingType !== 'number' ||
    !Buffer.isBuffer(t.certificate)
  )
    throw malformed('bad TLSA data')
  return {
    usage: t.usage,
    selector: t.selector,
    matchingType: t.matchingType,
    data: Buffer.from(t.certificate),
  }
}
