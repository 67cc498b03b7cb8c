/**
 * Public-key material as node:crypto KeyObjects, built once per (sub)key so
 * the signature check (`core/verify/native.ts`) and anything else that needs
 * the raw key never re-imports it per call. Only the algorithms the native
 * path handles: Ed25519 (legacy EdDSA 22 and RFC 9580 type 27) and RSA (1, 3);
 * everything else is left to openpgp.js.
 */
import * as crypto from 'node:crypto'

const ED25519_OID = '2b06010401da470f01'

export interface NativeKey {
  /** OpenPGP public-key algorithm ID. */
  algo: number
  keyObject: crypto.KeyObject
  /** Ed25519 keys: the 32 raw octets (core/keys/ed25519.ts checks with them). */
  ed25519?: Buffer
}

/**
 * A KeyObject from a public (sub)key packet body, or undefined when the
 * algorithm is not handled natively. v4: version, created(4), algo, material;
 * v6 adds a 4-octet material length (RFC 9580 §5.5.2).
 */
export function nativeKeyFromPacket(body: Uint8Array): NativeKey | undefined {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const version = b[0]
  const algo = b[5]!
  const p = version === 6 || version === 5 ? 10 : 6
  try {
    if (algo === 27) return ed25519NativeKey(algo, b.subarray(p, p + 32))
    if (algo === 22) return eddsaLegacy(b, p)
    if (algo === 1 || algo === 3) return rsaKey(b, p, algo)
  } catch {
    // Malformed material: let openpgp.js decide (it will refuse the key).
  }
  return undefined
}

function eddsaLegacy(b: Buffer, p: number): NativeKey | undefined {
  const oidLen = b[p]!
  if (b.subarray(p + 1, p + 1 + oidLen).toString('hex') !== ED25519_OID) return undefined
  const [q] = readMpi(b, p + 1 + oidLen)
  if (q.length !== 33 || q[0] !== 0x40) return undefined
  return ed25519NativeKey(22, q.subarray(1))
}

function rsaKey(b: Buffer, p: number, algo: number): NativeKey {
  const [n, next] = readMpi(b, p)
  const [e] = readMpi(b, next)
  const keyObject = crypto.createPublicKey({
    key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') },
    format: 'jwk',
  })
  return { algo, keyObject }
}

function ed25519NativeKey(algo: number, x: Buffer): NativeKey {
  if (x.length !== 32) throw new Error('bad Ed25519 key length')
  const keyObject = crypto.createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') },
    format: 'jwk',
  })
  // Its own 32 octets: not a view that keeps the whole key packet (or certificate) alive.
  return { algo, keyObject, ed25519: Buffer.from(x) }
}

/** An MPI: 2-octet bit count, then the octets (RFC 9580 §3.2). Throws when truncated. */
export function readMpi(b: Buffer, p: number): [Buffer, number] {
  if (p + 2 > b.length) throw new Error('truncated MPI')
  const bytes = (b.readUInt16BE(p) + 7) >> 3
  if (p + 2 + bytes > b.length) throw new Error('truncated MPI')
  return [b.subarray(p + 2, p + 2 + bytes), p + 2 + bytes]
}

/**
 * DER DigestInfo prefixes (RFC 8017 §9.2 note 1) by node:crypto hash name:
 * with them, RSASSA-PKCS1-v1_5 is checked (core/verify/native.ts) or made
 * (core/sign/signature.ts) on a digest already computed, instead of
 * hashing the whole message a second time.
 */
export const DIGEST_INFO: Record<string, Buffer> = {
  sha1: Buffer.from('3021300906052b0e03021a05000414', 'hex'),
  sha224: Buffer.from('302d300d06096086480165030402040500041c', 'hex'),
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
  'sha3-256': Buffer.from('3031300d060960864801650304020805000420', 'hex'),
  'sha3-512': Buffer.from('3051300d060960864801650304020a05000440', 'hex'),
}
