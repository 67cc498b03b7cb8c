/**
 * Which IP addresses a key or policy fetch may connect to. A stranger's DNS
 * can point `mta-sts.<domain>` or `openpgpkey.<domain>` at our own loopback,
 * LAN or metadata service (server-side request forgery), so fetches refuse
 * every address that is not globally routable unless [net]
 * allow_private_addresses is set (tests, odd deployments).
 *
 * IPv6 forms that embed an IPv4 address (v4-mapped, v4-compatible, NAT64
 * 64:ff9b::/96, 6to4 2002::/16) are judged by the IPv4 address inside.
 */
import * as net from 'node:net'

export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'unique-local'
  | 'cgnat'
  | 'multicast'
  | 'reserved'
  | 'documentation'
  | 'invalid'

interface Range {
  bytes: number[]
  bits: number
  cls: AddressClass
}

const r = (bytes: number[], bits: number, cls: AddressClass): Range => ({ bytes, bits, cls })

/** RFC 6890 special-purpose IPv4 blocks that must never be fetched from. */
const V4_RANGES: Range[] = [
  r([0, 0, 0, 0], 8, 'unspecified'), // "this network"
  r([10, 0, 0, 0], 8, 'private'), // RFC 1918
  r([100, 64, 0, 0], 10, 'cgnat'), // RFC 6598 shared address space
  r([127, 0, 0, 0], 8, 'loopback'),
  r([169, 254, 0, 0], 16, 'link-local'), // includes cloud metadata 169.254.169.254
  r([172, 16, 0, 0], 12, 'private'),
  r([192, 0, 0, 0], 24, 'reserved'), // IETF protocol assignments
  r([192, 0, 2, 0], 24, 'documentation'),
  r([192, 88, 99, 0], 24, 'reserved'), // deprecated 6to4 relay anycast
  r([192, 168, 0, 0], 16, 'private'),
  r([198, 18, 0, 0], 15, 'reserved'), // benchmarking
  r([198, 51, 100, 0], 24, 'documentation'),
  r([203, 0, 113, 0], 24, 'documentation'),
  r([224, 0, 0, 0], 4, 'multicast'),
  r([240, 0, 0, 0], 4, 'reserved'), // includes 255.255.255.255
]

function zeros(n: number): number[] {
  return new Array<number>(n).fill(0)
}

const V6_RANGES: Range[] = [
  r(zeros(16), 128, 'unspecified'),
  r([...zeros(15), 1], 128, 'loopback'),
  r(zeros(12), 96, 'reserved'), // the rest of ::/96 (v4-compatible of 0.x.x.x)
  r([0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, 'reserved'), // discard prefix, RFC 6666
  r([0x20, 0x01, 0x0d, 0xb8], 32, 'documentation'),
  r([0x20, 0x01, 0x00, 0x00], 23, 'reserved'), // IETF protocol assignments (Teredo, ORCHID, ...)
  r([0xfc], 7, 'unique-local'),
  r([0xfe, 0x80], 10, 'link-local'),
  r([0xfe, 0xc0], 10, 'private'), // deprecated site-local
  r([0xff], 8, 'multicast'),
]

function matches(addr: Uint8Array, range: Range): boolean {
  for (let bit = 0; bit < range.bits; bit += 8) {
    const left = range.bits - bit
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff
    const i = bit / 8
    if ((addr[i]! & mask) !== ((range.bytes[i] ?? 0) & mask)) return false
  }
  return true
}

function classifyBytes(addr: Uint8Array, ranges: Range[]): AddressClass {
  return ranges.find((range) => matches(addr, range))?.cls ?? 'public'
}

/** Parses dotted-quad IPv4 into 4 bytes (caller checked net.isIPv4). */
function v4Bytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split('.').map(Number))
}

/** Expands an IPv6 address (with optional ::, trailing dotted quad and %zone) into 16 bytes. */
export function v6Bytes(ip: string): Uint8Array {
  let s = ip.replace(/%.*$/, '')
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(s)
  if (quad) {
    const b = v4Bytes(quad[1]!)
    s =
      s.slice(0, quad.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined]
  const headParts = head ? head.split(':') : []
  const tailParts = tail ? tail.split(':') : []
  const fill = tail === undefined ? [] : new Array<string>(8 - headParts.length - tailParts.length).fill('0')
  const groups = [...headParts, ...fill, ...tailParts].map((g) => parseInt(g, 16))
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8
    out[2 * i + 1] = g & 0xff
  })
  return out
}

/** The IPv4 address an IPv6 address stands for, if it embeds one that is used for routing. */
function embeddedV4(b: Uint8Array): Uint8Array | undefined {
  const zeros = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0)
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return b.subarray(12) // ::ffff:a.b.c.d
  if (zeros(0, 12) && b[12] !== 0) return b.subarray(12) // deprecated ::a.b.c.d (RFC 4291 §2.5.5.1)
  const nat64 = [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]
  if (nat64.every((x, i) => b[i] === x)) return b.subarray(12) // RFC 6052 well-known prefix
  if (b[0] === 0x20 && b[1] === 0x02) return b.subarray(2, 6) // 6to4, RFC 3056
  return undefined
}

/** Classifies an IP address string ('invalid' when it is not one). */
export function classifyAddress(ip: string): AddressClass {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip
  const family = net.isIP(bare.replace(/%.*$/, ''))
  if (family === 4) return classifyBytes(v4Bytes(bare), V4_RANGES)
  if (family !== 6) return 'invalid'
  const bytes = v6Bytes(bare)
  const v4 = embeddedV4(bytes)
  if (v4) return classifyBytes(v4, V4_RANGES)
  return classifyBytes(bytes, V6_RANGES)
}

/** True when a fetch may connect to IP (public, or any valid address when private ones are allowed). */
export function isAllowedAddress(ip: string, allowPrivate: boolean): boolean {
  const cls = classifyAddress(ip)
  if (cls === 'invalid') return false
  return allowPrivate || cls === 'public'
}
