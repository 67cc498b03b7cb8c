/**
 * Detached OpenPGP signatures made with node:crypto (RFC 9580 §5.2): a v4
 * binary-document signature (type 0x00) with SHA-256, a hashed creation
 * time and issuer fingerprint and an unhashed issuer key ID (older
 * verifiers look for it). openpgp.js reads and checks the secret key once
 * (signingKeyFrom); each message then costs one hash and one native
 * signature, no openpgp.js stream machinery.
 */
import * as crypto from 'node:crypto'
import * as openpgp from 'openpgp'
import { LinksecError } from '../errors'
import { ed25519Sign } from '../keys/ed25519'
import { DIGEST_INFO } from '../keys/native-key'

/** RFC 9580 §9.1 public-key algorithms this signer handles. */
const RSA = 1
const EDDSA_LEGACY = 22
const ED25519 = 27
/** RFC 9580 §9.5: SHA2-256. */
const SHA256 = 8

export interface SigningKey {
  /** Lower-cased address the key signs for. */
  address: string
  /** Primary key fingerprint, upper-case hex. */
  fingerprint: string
  /** Fingerprint of the (sub)key that signs, upper-case hex. */
  signingFingerprint: string
  algo: number
  /** "pgp-sha256": the micalg parameter (RFC 3156 §5). */
  micalg: string
  privateKey: crypto.KeyObject
  /** Ed25519 keys: seed || public key, the form libsodium signs with (core/keys/ed25519.ts). */
  ed25519Secret?: Buffer
  /** Key ID (last 8 octets of the v4 fingerprint) and the fingerprint, as octets. */
  keyId: Buffer
  fpr: Buffer
}

const keyError = (msg: string) => new LinksecError('LINKSEC_SIGN_KEY', msg, { temporary: false })

/**
 * The signing (sub)key of an unprotected secret key for `address`, valid at
 * `date` (openpgp.js checks self-signatures, expiry, revocation, flags).
 */
export async function signingKeyFrom(
  key: openpgp.PrivateKey,
  address: string,
  date = new Date(),
): Promise<SigningKey> {
  const signer = await key.getSigningKey(undefined, date, { email: address }).catch((e: unknown) => {
    throw keyError(`the key for ${address} cannot sign: ${e instanceof Error ? e.message : String(e)}`)
  })
  const packet = signer.keyPacket as openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket
  if (packet.version !== 4)
    throw keyError(`the key for ${address} is a v${packet.version} key; linksec signs with v4 keys`)
  if (!packet.isDecrypted()) throw keyError(`the key for ${address} is protected by a passphrase`)
  const fpr = Buffer.from(packet.getFingerprint(), 'hex')
  return {
    address: address.toLowerCase(),
    fingerprint: key.getFingerprint().toUpperCase(),
    signingFingerprint: fpr.toString('hex').toUpperCase(),
    algo: packet.algorithm,
    micalg: 'pgp-sha256',
    privateKey: nativePrivateKey(packet),
    ed25519Secret: ed25519Secret(packet),
    keyId: fpr.subarray(12),
    fpr,
  }
}

interface Params {
  publicParams: Record<string, Uint8Array>
  privateParams?: Record<string, Uint8Array>
}

/** seed || public key of an Ed25519 (sub)key (checked by nativePrivateKey first), else undefined. */
function ed25519Secret(packet: openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket): Buffer | undefined {
  const { publicParams: pub, privateParams: priv } = packet as unknown as Params
  const algo: number = packet.algorithm
  if ((algo !== EDDSA_LEGACY && algo !== ED25519) || !priv?.seed) return undefined
  const x = algo === ED25519 ? pub.A : pub.Q?.subarray(1)
  if (!x || x.length !== 32 || priv.seed.length !== 32) return undefined
  return Buffer.concat([priv.seed, x])
}

function nativePrivateKey(packet: openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket): crypto.KeyObject {
  const { publicParams: pub, privateParams: priv } = packet as unknown as Params
  const algo: number = packet.algorithm
  if (!priv)
    throw keyError('the secret key material is missing (a stub exported with --export-secret-subkeys?)')
  const b64 = (u: Uint8Array | bigint) =>
    (typeof u === 'bigint' ? bigBytes(u) : Buffer.from(u)).toString('base64url')
  if (algo === EDDSA_LEGACY || algo === ED25519) {
    const x = algo === ED25519 ? pub.A! : pub.Q!.subarray(1)
    return crypto.createPrivateKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: b64(x), d: b64(priv.seed!) },
      format: 'jwk',
    })
  }
  if (algo === RSA) {
    // OpenPGP stores u = p^-1 mod q; JWK wants qi = q^-1 mod p, so p and q swap roles.
    const [d, p, q] = [big(priv.d!), big(priv.q!), big(priv.p!)]
    const jwk = {
      kty: 'RSA',
      n: b64(pub.n!),
      e: b64(pub.e!),
      d: b64(d),
      p: b64(p),
      q: b64(q),
      dp: b64(d % (p - 1n)),
      dq: b64(d % (q - 1n)),
      qi: b64(priv.u!),
    }
    return crypto.createPrivateKey({ key: jwk, format: 'jwk' })
  }
  throw keyError(`linksec signs with Ed25519 or RSA keys, not OpenPGP algorithm ${algo}`)
}

function big(u: Uint8Array): bigint {
  return u.length === 0 ? 0n : BigInt(`0x${Buffer.from(u).toString('hex')}`)
}

function bigBytes(n: bigint): Buffer {
  const hex = n.toString(16)
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex')
}

/** A detached signature over the concatenation of `data`, armored with CRLF line ends. */
export function detachedSignature(key: SigningKey, data: Buffer | readonly Buffer[], date: Date): string {
  return armorSignature(signaturePacket(key, data, date))
}

/** Hashed subpackets after the creation time: the issuer fingerprint (33), the same for every message. */
const issuerSubpackets = new WeakMap<SigningKey, Buffer>()

/**
 * The binary signature packet (new-format header, tag 2) over `data` (one
 * buffer or several, hashed in order without joining them).
 */
export function signaturePacket(key: SigningKey, data: Buffer | readonly Buffer[], date: Date): Buffer {
  let issuer = issuerSubpackets.get(key)
  if (!issuer) {
    issuer = subpacket(33, Buffer.concat([Buffer.from([4]), key.fpr]))
    issuerSubpackets.set(key, issuer)
  }
  // version 4, type 0x00 binary, algorithm, SHA-256, hashed length; creation time subpacket (2).
  const hashedLen = 6 + issuer.length
  const hashedPart = Buffer.allocUnsafe(6 + hashedLen)
  hashedPart.set([4, 0x00, key.algo, SHA256, hashedLen >> 8, hashedLen & 0xff, 5, 2])
  hashedPart.writeUInt32BE(Math.floor(date.getTime() / 1000) >>> 0, 8)
  issuer.copy(hashedPart, 12)
  const trailer = Buffer.from([4, 0xff, 0, 0, 0, 0])
  trailer.writeUInt32BE(hashedPart.length, 2)
  const h = crypto.createHash('sha256')
  for (const d of Buffer.isBuffer(data) ? [data] : data) h.update(d)
  const digest = h.update(hashedPart).update(trailer).digest()
  const unhashed = subpacket(16, key.keyId)
  const body = Buffer.concat([
    hashedPart,
    Buffer.from([0, unhashed.length]),
    unhashed,
    digest.subarray(0, 2),
    signatureMaterial(key, digest),
  ])
  return Buffer.concat([packetHeader(2, body.length), body])
}

function signatureMaterial(key: SigningKey, digest: Buffer): Buffer {
  if (key.algo === RSA) {
    const prefix = DIGEST_INFO.sha256!
    const sig = crypto.privateEncrypt(
      { key: key.privateKey, padding: crypto.constants.RSA_PKCS1_PADDING },
      Buffer.concat([prefix, digest]),
    )
    return mpi(sig)
  }
  // RFC 9580 §5.2.3.4: EdDSA signs the digest; legacy keys write R and S as MPIs, v6-style Ed25519 raw.
  const sig = ed25519Sign(key, digest)
  return key.algo === ED25519 ? sig : Buffer.concat([mpi(sig.subarray(0, 32)), mpi(sig.subarray(32))])
}

/** RFC 9580 §3.2: bit count, then the octets without leading zeros. */
function mpi(b: Buffer): Buffer {
  let i = 0
  while (i < b.length - 1 && b[i] === 0) i++
  const v = b.subarray(i)
  const bits = v.length === 0 ? 0 : (v.length - 1) * 8 + (32 - Math.clz32(v[0]!))
  return Buffer.concat([Buffer.from([bits >> 8, bits & 0xff]), v])
}

/** A subpacket with a one-octet length (all of ours are shorter than 192). */
function subpacket(type: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([data.length + 1, type]), data])
}

/** RFC 9580 §4.2.1 new-format length. */
function packetHeader(tag: number, len: number): Buffer {
  if (len < 192) return Buffer.from([0xc0 | tag, len])
  if (len < 8384) return Buffer.from([0xc0 | tag, ((len - 192) >> 8) + 192, (len - 192) & 0xff])
  const h = Buffer.from([0xc0 | tag, 0xff, 0, 0, 0, 0])
  h.writeUInt32BE(len, 2)
  return h
}

/** ASCII armor (RFC 9580 §6.2) with the CRC-24 older readers still expect. */
export function armorSignature(packet: Buffer): string {
  const b64 = packet.toString('base64')
  const lines: string[] = []
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64))
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc24(packet))
  return `-----BEGIN PGP SIGNATURE-----\r\n\r\n${lines.join('\r\n')}\r\n=${crc.subarray(1).toString('base64')}\r\n-----END PGP SIGNATURE-----\r\n`
}

/** RFC 9580 §6.1.1 CRC-24, a table per octet value. */
const CRC24_TABLE = Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 16
  for (let i = 0; i < 8; i++) {
    crc <<= 1
    if (crc & 0x1000000) crc ^= 0x1864cfb
  }
  return crc & 0xffffff
})

function crc24(data: Buffer): number {
  let crc = 0xb704ce
  for (const byte of data) crc = ((crc << 8) & 0xffffff) ^ CRC24_TABLE[((crc >> 16) ^ byte) & 0xff]!
  return crc
}
