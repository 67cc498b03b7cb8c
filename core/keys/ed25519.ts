/**
 * Ed25519 signature checks (RFC 8032) for the native signature path
 * (core/verify/native.ts): libsodium through sodium-native where it loads,
 * node:crypto otherwise. Measured on the 2-vCPU CI machine, one check of a
 * 64-byte message: OpenSSL (node:crypto, KeyObject) 128-140 µs, libsodium
 * 59-64 µs; the check was about half of linksec's own CPU per signed message
 * in Haraka (bench/trace-haraka-inproc.ts, bench/README.md "Stop 22").
 * Signing likewise: 20-24 µs against 44-56 µs (core/sign/signature.ts).
 * libsodium is at least as strict as OpenSSL (it also refuses small-order
 * keys and non-canonical encodings), so nothing valid here is invalid there.
 */
import * as crypto from 'node:crypto'

interface Sodium {
  crypto_sign_verify_detached(signature: Buffer, message: Buffer, publicKey: Buffer): boolean
  crypto_sign_detached(signature: Buffer, message: Buffer, secretKey: Buffer): void
}

let sodium: Sodium | null | undefined

/** sodium-native, or null where its prebuilt addon does not load on this platform. */
function loadSodium(): Sodium | null {
  if (sodium !== undefined) return sodium
  try {
    const s = require('sodium-native') as Partial<Sodium>
    sodium =
      typeof s.crypto_sign_verify_detached === 'function' && typeof s.crypto_sign_detached === 'function'
        ? (s as Sodium)
        : null
  } catch {
    sodium = null
  }
  return sodium
}

/** Which implementation checks Ed25519 here (diagnostics, benchmarks, tests). */
export function ed25519Backend(): 'libsodium' | 'node:crypto' {
  return loadSodium() ? 'libsodium' : 'node:crypto'
}

/** A public key: its 32 raw octets and the same key as a KeyObject (the fallback's form). */
export interface Ed25519PublicKey {
  raw: Buffer
  keyObject: crypto.KeyObject
}

/** Whether `signature` (64 octets, R || S) is a valid Ed25519 signature of `message`. */
export function ed25519Verify(key: Ed25519PublicKey, message: Buffer, signature: Buffer): boolean {
  if (signature.length !== 64 || key.raw.length !== 32) return false
  const s = loadSodium()
  if (s) return s.crypto_sign_verify_detached(signature, message, key.raw)
  return crypto.verify(null, message, key.keyObject, signature)
}

/** A secret key: seed || public key (64 octets, libsodium's form) and the same key as a KeyObject. */
export interface Ed25519SecretKey {
  ed25519Secret?: Buffer
  privateKey: crypto.KeyObject
}

/** The Ed25519 signature (64 octets, R || S) of `message`; deterministic (RFC 8032), the same from either backend. */
export function ed25519Sign(key: Ed25519SecretKey, message: Buffer): Buffer {
  const s = loadSodium()
  if (s && key.ed25519Secret?.length === 64) {
    const sig = Buffer.allocUnsafe(64)
    s.crypto_sign_detached(sig, message, key.ed25519Secret)
    return sig
  }
  return crypto.sign(null, message, key.privateKey)
}
