/**
 * OpenPGP signature packets, read directly (RFC 9580 §4, §5.2) so the hot
 * path needs no openpgp.js stream machinery: ASCII armor, packet framing,
 * v4 and v6 signature packets and the subpackets a verifier needs.
 * Anything malformed throws PacketError; the caller reports permerror.
 */

export class PacketError extends Error {
  override name = 'PacketError'
  /** True when the data is well-formed but of a kind this reader does not handle (e.g. v3/v5). */
  readonly unsupported: boolean

  constructor(message: string, unsupported = false) {
    super(message)
    this.unsupported = unsupported
  }
}

export interface SignaturePacket {
  version: 4 | 6
  /** 0x00 binary, 0x01 canonical text (RFC 9580 §5.2.1). */
  sigType: number
  pubAlgo: number
  hashAlgo: number
  /** The octets hashed after the data: version .. end of hashed subpackets. */
  hashedPart: Buffer
  /** v6 salt (empty for v4). */
  salt: Buffer
  left16: Buffer
  /** Algorithm-specific signature material (MPIs for v4 EdDSA/RSA, raw for type 27). */
  material: Buffer
  /** Creation time, seconds since the epoch (subpacket 2). */
  created?: number
  /** Signature lifetime in seconds after creation (subpacket 3), 0 = none. */
  expiresIn: number
  /** Issuer key ID, upper-case hex (subpacket 16, or the fingerprint's tail). */
  issuerKeyId?: string
  /** Issuer fingerprint, upper-case hex (subpacket 33). */
  issuerFingerprint?: string
  /** A critical subpacket this reader does not understand (the signature must then be ignored). */
  unknownCritical?: number
  /** The whole packet body, for the openpgp.js fallback. */
  raw: Buffer
}

const ARMOR_BEGIN = /^-----BEGIN PGP (SIGNATURE|MESSAGE)-----[ \t]*$/

/** Decodes the first armored block of a kind ("SIGNATURE"); the CRC24 line is optional (RFC 9580 §6.1). */
export function dearmor(text: string, kind = 'SIGNATURE'): Buffer {
  const lines = text.split(/\r?\n/)
  const begin = lines.findIndex((l) => ARMOR_BEGIN.test(l.trim()) && l.includes(kind))
  if (begin === -1) throw new PacketError(`no -----BEGIN PGP ${kind}----- line`)
  let i = begin + 1
  // Armor headers ("Version: x") end at the first blank line.
  while (i < lines.length && /^[A-Za-z][A-Za-z0-9-]*: /.test(lines[i]!)) i++
  if (i < lines.length && lines[i]!.trim() === '') i++
  const b64: string[] = []
  for (; i < lines.length; i++) {
    const l = lines[i]!.trim()
    if (l.startsWith(`-----END PGP ${kind}-----`)) return decodeBase64(b64.join(''))
    if (l === '' || /^=[A-Za-z0-9+/]{4}$/.test(l)) continue
    b64.push(l)
  }
  throw new PacketError(`no -----END PGP ${kind}----- line`)
}

function decodeBase64(s: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) throw new PacketError('bad base64 in armor')
  return Buffer.from(s, 'base64')
}

export interface Packet {
  tag: number
  body: Buffer
}

/** Splits binary OpenPGP data into packets (old and new framing; partial lengths refused). */
export function readPackets(buf: Buffer): Packet[] {
  return [...packetsOf(buf)]
}

/** The packets one at a time, so a reader can stop early. */
function* packetsOf(buf: Buffer): Generator<Packet> {
  let p = 0
  while (p < buf.length) {
    const ctb = buf[p++]!
    if ((ctb & 0x80) === 0) throw new PacketError('not an OpenPGP packet header')
    let tag: number
    let len: number
    if (ctb & 0x40) {
      tag = ctb & 0x3f
      ;[len, p] = newLength(buf, p)
    } else {
      tag = (ctb >> 2) & 0x0f
      ;[len, p] = oldLength(buf, p, ctb & 3)
    }
    if (p + len > buf.length) throw new PacketError('truncated packet')
    yield { tag, body: buf.subarray(p, p + len) }
    p += len
  }
}

function need(buf: Buffer, p: number, n: number): void {
  if (p + n > buf.length) throw new PacketError('truncated packet header')
}

function newLength(buf: Buffer, p: number): [number, number] {
  need(buf, p, 1)
  const a = buf[p]!
  if (a < 192) return [a, p + 1]
  if (a < 224) {
    need(buf, p, 2)
    return [((a - 192) << 8) + buf[p + 1]! + 192, p + 2]
  }
  if (a === 255) {
    need(buf, p, 5)
    return [buf.readUInt32BE(p + 1), p + 5]
  }
  throw new PacketError('partial body lengths are not allowed in a signature')
}

function oldLength(buf: Buffer, p: number, type: number): [number, number] {
  if (type === 3) return [buf.length - p, p]
  const n = 1 << type
  need(buf, p, n)
  return [buf.readUIntBE(p, n), p + n]
}

/**
 * The signature packets (tag 2) of a detached signature block. With `max`,
 * reading stops at the (max+1)-th signature: the caller refuses the block
 * without parsing the rest of a flood.
 */
export function readSignatures(binary: Buffer, max = Infinity): SignaturePacket[] {
  const sigs: SignaturePacket[] = []
  for (const x of packetsOf(binary)) {
    if (x.tag !== 2) continue
    sigs.push(parseSignature(x.body))
    if (sigs.length > max) break
  }
  if (sigs.length === 0) throw new PacketError('no signature packet')
  return sigs
}

function parseSignature(b: Buffer): SignaturePacket {
  if (b.length < 1) throw new PacketError('empty signature packet')
  const version = b[0]!
  if (version !== 4 && version !== 6)
    throw new PacketError(`signature version ${version} is not supported`, true)
  const wide = version === 6 ? 4 : 2
  need(b, 0, 4 + wide)
  const hashedLen = b.readUIntBE(4, wide)
  const hashedEnd = 4 + wide + hashedLen
  need(b, hashedEnd, wide)
  const unhashedLen = b.readUIntBE(hashedEnd, wide)
  let p = hashedEnd + wide + unhashedLen
  need(b, p, 2)
  const left16 = b.subarray(p, p + 2)
  p += 2
  let salt: Buffer = Buffer.alloc(0)
  if (version === 6) {
    need(b, p, 1)
    const saltLen = b[p]!
    need(b, p + 1, saltLen)
    salt = b.subarray(p + 1, p + 1 + saltLen)
    p += 1 + saltLen
  }
  const sig: SignaturePacket = {
    version,
    sigType: b[1]!,
    pubAlgo: b[2]!,
    hashAlgo: b[3]!,
    hashedPart: b.subarray(0, hashedEnd),
    salt,
    left16,
    material: b.subarray(p),
    expiresIn: 0,
    raw: b,
  }
  readSubpackets(b.subarray(4 + wide, hashedEnd), sig, true)
  readSubpackets(b.subarray(hashedEnd + wide, hashedEnd + wide + unhashedLen), sig, false)
  return sig
}

/** Subpacket types this reader knows, so a critical one of them is not "unknown". */
const KNOWN = new Set([
  2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 16, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 39,
])

function readSubpackets(area: Buffer, sig: SignaturePacket, hashed: boolean): void {
  let p = 0
  while (p < area.length) {
    let len: number
    ;[len, p] = subpacketLength(area, p)
    if (len < 1 || p + len > area.length) throw new PacketError('truncated subpacket')
    const type = area[p]! & 0x7f
    const critical = (area[p]! & 0x80) !== 0
    const data = area.subarray(p + 1, p + len)
    p += len
    if (hashed) applyHashed(sig, type, data, critical)
    // Unhashed issuer hints are accepted: they only select a key, the math decides.
    else if (type === 16 && data.length === 8 && !sig.issuerKeyId) sig.issuerKeyId = hex(data)
  }
}

function applyHashed(sig: SignaturePacket, type: number, data: Buffer, critical: boolean): void {
  if (type === 2 && data.length === 4) sig.created = data.readUInt32BE(0)
  else if (type === 3 && data.length === 4) sig.expiresIn = data.readUInt32BE(0)
  else if (type === 16 && data.length === 8) sig.issuerKeyId = hex(data)
  else if (type === 33 && data.length >= 21) {
    sig.issuerFingerprint = hex(data.subarray(1))
    if (!sig.issuerKeyId) sig.issuerKeyId = keyIdOfFingerprint(data[0]!, sig.issuerFingerprint)
  } else if (type === 20 && critical) sig.unknownCritical = type
  else if (critical && !KNOWN.has(type)) sig.unknownCritical = type
}

function subpacketLength(area: Buffer, p: number): [number, number] {
  const a = area[p]!
  if (a < 192) return [a, p + 1]
  if (a < 255) {
    need(area, p, 2)
    return [((a - 192) << 8) + area[p + 1]! + 192, p + 2]
  }
  need(area, p, 5)
  return [area.readUInt32BE(p + 1), p + 5]
}

/** v4 key IDs are the last 8 octets of the fingerprint, v6 the first 8. */
function keyIdOfFingerprint(keyVersion: number, fpr: string): string {
  return keyVersion === 4 ? fpr.slice(-16) : fpr.slice(0, 16)
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex').toUpperCase()
}
