/**
 * The signature math at native speed. openpgp.js 6 spends most of a
 * verification outside the math (profiled on a 2 KB message: ~30 % of the
 * wall time the main thread idles waiting for WebCrypto's thread-pool job,
 * ~8 % re-importing the raw Ed25519 key per call, then key-validity
 * re-checks and stream plumbing). Here the v4/v6 signature hash is computed
 * once with node:crypto and checked against a KeyObject built once per key:
 * Ed25519 (legacy EdDSA 22 and RFC 9580 type 27) with libsodium or
 * `crypto.verify` (core/keys/ed25519.ts), RSA
 * (1, 3) by opening the signature with the public key. Other algorithms
 * return "unsupported" and the caller falls back to openpgp.js. The key side
 * (KeyObjects from key packets) is `core/keys/native-key.ts`.
 */
import * as crypto from 'node:crypto'
import { ed25519Verify } from '../keys/ed25519'
import { DIGEST_INFO, readMpi, type NativeKey } from '../keys/native-key'
import type { SignaturePacket } from './packets'

/** RFC 9580 §9.5 hash algorithm IDs -> node:crypto names. */
const HASHES: Record<number, string> = {
  2: 'sha1',
  8: 'sha256',
  9: 'sha384',
  10: 'sha512',
  11: 'sha224',
  12: 'sha3-256',
  14: 'sha3-512',
}

/** A part up to this size is copied once with the signature's own octets and hashed in one call. */
const ONE_SHOT_MAX_BYTES = 64 * 1024

/** Hashes too weak to accept for data signatures (openpgp.js rejects these too). */
const WEAK_HASHES = new Set([1, 2, 3])

export type NativeOutcome = 'valid' | 'invalid' | 'unsupported' | 'weak_hash'

/**
 * The signature hash input after the data (RFC 9580 §5.2.4): the hashed
 * part of the packet, then the trailer: version, 0xFF, 4-octet length of
 * the hashed part.
 */
function signatureTrailer(sig: SignaturePacket): Buffer {
  const t = Buffer.alloc(6)
  t[0] = sig.version
  t[1] = 0xff
  t.writeUInt32BE(sig.hashedPart.length >>> 0, 2)
  return t
}

/**
 * The signed data hashed once per hash algorithm, shared by every signature
 * of a message. An OpenPGP signature hashes the data, then its own hashed
 * part and trailer (RFC 9580 §5.2.4): the state after the data is computed
 * once and copied (`hash.copy()`) per signature, so N signatures over a large
 * part cost one pass over it, not N. v6 signatures put a salt before the data:
 * one state per (algorithm, salt).
 */
export class SignedDataHashes {
  private readonly states = new Map<string, crypto.Hash>()
  /** Passes over the data so far (what the sharing saves; tests read it). */
  passes = 0

  /** `signatures`: how many will be checked over this data (one: the usual message). */
  constructor(
    readonly data: Buffer,
    private readonly signatures = Infinity,
  ) {}

  /**
   * The signature hash (RFC 9580 §5.2.4) of `sig` over the data, or
   * undefined for an unknown algorithm. One signature over a small part is
   * hashed in one call (`crypto.hash`, Node ≥ 20.12): two Hash objects and
   * four calls less, ~7 µs of the plugin's ~130 µs per message in Haraka
   * (bench/trace-haraka-inproc.ts, bench/README.md stop 21).
   */
  digest(sig: SignaturePacket): Buffer | undefined {
    const name = HASHES[sig.hashAlgo]
    if (!name) return undefined
    const trailer = signatureTrailer(sig)
    if (
      this.signatures === 1 &&
      this.data.length <= ONE_SHOT_MAX_BYTES &&
      typeof crypto.hash === 'function'
    ) {
      this.passes++
      const parts = [this.data, sig.hashedPart, trailer]
      if (sig.version === 6) parts.unshift(sig.salt)
      return crypto.hash(name, Buffer.concat(parts), 'buffer')
    }
    return this.afterData(sig)!.update(sig.hashedPart).update(trailer).digest()
  }

  /** A fresh hash that has absorbed (salt and) the data, or undefined for an unknown algorithm. */
  afterData(sig: SignaturePacket): crypto.Hash | undefined {
    const name = HASHES[sig.hashAlgo]
    if (!name) return undefined
    const key = sig.version === 6 ? `${sig.hashAlgo}:${sig.salt.toString('hex')}` : `${sig.hashAlgo}`
    let state = this.states.get(key)
    if (!state) {
      state = crypto.createHash(name)
      if (sig.version === 6) state.update(sig.salt)
      state.update(this.data)
      this.passes++
      this.states.set(key, state)
    }
    return state.copy()
  }
}

/**
 * Checks one signature over already-canonical data with a native key.
 * `data` must be exactly the octets the signature type hashes; give every
 * signature of a message the same SignedDataHashes so the data is hashed
 * once per algorithm. The public-key step then works on that digest.
 */
export function verifyNative(
  sig: SignaturePacket,
  data: Buffer | SignedDataHashes,
  key: NativeKey,
): NativeOutcome {
  if (WEAK_HASHES.has(sig.hashAlgo)) return 'weak_hash'
  const name = HASHES[sig.hashAlgo]
  if (!name || key.algo !== sig.pubAlgo) return 'unsupported'
  const hashes = data instanceof SignedDataHashes ? data : new SignedDataHashes(data, 1)
  const digest = hashes.digest(sig)!
  if (digest[0] !== sig.left16[0] || digest[1] !== sig.left16[1]) return 'invalid'
  if (key.algo === 22 || key.algo === 27) return verifyEd25519(sig, digest, key)
  return verifyRsa(sig, name, digest, key.keyObject)
}

function verifyEd25519(sig: SignaturePacket, digest: Buffer, key: NativeKey): NativeOutcome {
  let raw: Buffer
  if (sig.pubAlgo === 27) raw = sig.material.subarray(0, 64)
  else {
    const [r, next] = readMpi(sig.material, 0)
    const [s] = readMpi(sig.material, next)
    if (r.length > 32 || s.length > 32) return 'invalid'
    raw = Buffer.concat([leftPad(r, 32), leftPad(s, 32)])
  }
  if (raw.length !== 64) return 'invalid'
  // RFC 9580 §5.2.3.4: EdDSA signs the digest (hash at least 256 bits).
  if (digest.length < 32) return 'weak_hash'
  // On the calling thread: the callback form (libuv's pool) gained Haraka 5-8 % in two runs but
  // cost 20-80 µs more CPU per signature on a 2-vCPU VM (thread wake-ups), bench/README.md.
  const valid = key.ed25519
    ? ed25519Verify({ raw: key.ed25519, keyObject: key.keyObject }, digest, raw)
    : crypto.verify(null, digest, key.keyObject, raw)
  return valid ? 'valid' : 'invalid'
}

function verifyRsa(sig: SignaturePacket, name: string, digest: Buffer, key: crypto.KeyObject): NativeOutcome {
  const prefix = DIGEST_INFO[name]
  if (!prefix) return 'unsupported'
  const [m] = readMpi(sig.material, 0)
  const size = ((key.asymmetricKeyDetails?.modulusLength ?? m.length * 8) + 7) >> 3
  if (m.length > size) return 'invalid'
  const opened = openRsaSignature(key, leftPad(m, size))
  // Unopenable (bad padding, or an OpenSSL that refuses the operation): openpgp.js decides,
  // so an environment problem can never turn good mail into a "fail".
  if (!opened) return 'unsupported'
  return digestInfoMatches(opened, prefix, digest) ? 'valid' : 'invalid'
}

/**
 * RSASSA-PKCS1-v1_5 by recovery: OpenSSL checks the type-1 padding while
 * opening the signature with the public key; what remains must be exactly
 * DigestInfo(hash, digest), compared in full (no lenient DER parsing).
 */
export function rsaSignatureMatches(
  key: crypto.KeyObject,
  signature: Buffer,
  hash: string,
  digest: Buffer,
): boolean {
  const prefix = DIGEST_INFO[hash]
  const opened = prefix && openRsaSignature(key, signature)
  return opened ? digestInfoMatches(opened, prefix, digest) : false
}

function openRsaSignature(key: crypto.KeyObject, signature: Buffer): Buffer | undefined {
  try {
    return crypto.publicDecrypt({ key, padding: crypto.constants.RSA_PKCS1_PADDING }, signature)
  } catch {
    return undefined
  }
}

function digestInfoMatches(opened: Buffer, prefix: Buffer, digest: Buffer): boolean {
  const expected = Buffer.concat([prefix, digest])
  return opened.length === expected.length && crypto.timingSafeEqual(opened, expected)
}

function leftPad(b: Buffer, n: number): Buffer {
  if (b.length >= n) return b
  return Buffer.concat([Buffer.alloc(n - b.length), b])
}
