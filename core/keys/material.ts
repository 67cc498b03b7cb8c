/**
 * Keys for one address, as found anywhere (local store, WKD, OPENPGPKEY):
 * parsed with openpgp.js, stripped to the user ID that matches the address
 * (draft-koch-openpgp-webkey-service §3.1: the client drops all other UIDs),
 * and turned into signer entries: per (sub)key, whether it may sign now and a
 * native KeyObject for the fast path. openpgp.js decides validity
 * (self-signatures, revocations, expiry, key flags); that is what it is good at.
 */
import * as openpgp from 'openpgp'
import { nativeKeyFromPacket, type NativeKey } from './native-key'
import { addressKey } from './address'

export type SignerStatus = 'valid' | 'revoked' | 'expired' | 'not_signing'

export interface SignerEntry {
  keyId: string
  /** Upper-case hex fingerprint of this (sub)key. */
  fingerprint: string
  /** Fingerprint of the primary key it belongs to (what we report). */
  primaryFingerprint: string
  status: SignerStatus
  /** Why it is not valid, in words. */
  detail?: string
  /** Key creation time, seconds since the epoch. */
  created: number
  native?: NativeKey
  /** The openpgp.js key, for algorithms the fast path does not handle. */
  key: openpgp.PublicKey
}

export interface KeyRing {
  /** Lower-cased address the keys were filtered for. */
  address: string
  keys: openpgp.PublicKey[]
  /** Binary transferable keys (filtered), e.g. for the shared cache or WKD serving. */
  binary: Buffer
}

/** Reads binary or armored keys, possibly several concatenated. Throws on garbage. */
export async function readKeyBlob(data: Buffer): Promise<openpgp.PublicKey[]> {
  const head = data.subarray(0, 64).toString('latin1')
  const keys = /-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----/.test(head)
    ? await openpgp.readKeys({ armoredKeys: data.toString('latin1') })
    : await openpgp.readKeys({ binaryKeys: new Uint8Array(data) })
  // A PublicKey's toPublic() is itself; a PrivateKey's drops the secret parts.
  return keys.map((k) => k.toPublic())
}

/** The e-mail of a user ID, lower-cased ("Name <a@b>" or a bare address). */
export function userIdAddress(u: openpgp.User): string | undefined {
  const uid = u.userID
  if (!uid) return undefined
  const email = uid.email || (/^[^\s<>]+@[^\s<>]+$/.test(uid.userID) ? uid.userID : '')
  return email ? email.toLowerCase() : undefined
}

/** Every address a key carries a user ID for. */
export function keyAddresses(key: openpgp.PublicKey): string[] {
  return [...new Set(key.users.map(userIdAddress).filter((a): a is string => a !== undefined))]
}

/** Keeps only user IDs for `address`; undefined when none is left. */
export function keepAddress(key: openpgp.PublicKey, address: string): openpgp.PublicKey | undefined {
  const want = addressKey(address)
  const users = key.users.filter((u) => userIdAddress(u) === want)
  if (users.length === 0) return undefined
  // A fresh key object over the same packets, so the caller's key keeps its user IDs.
  const copy = new openpgp.PublicKey(key.toPacketList())
  copy.users = copy.users.filter((u) => userIdAddress(u) === want)
  return copy
}

/** Filters parsed keys to an address; the ring is empty when no key has its user ID. */
export function ringFor(address: string, keys: openpgp.PublicKey[]): KeyRing {
  const kept = keys.map((k) => keepAddress(k, address)).filter((k): k is openpgp.PublicKey => !!k)
  const binary = Buffer.concat(kept.map((k) => Buffer.from(k.write())))
  return { address: addressKey(address), keys: kept, binary }
}

/**
 * Every (sub)key of the ring with its status at `date` for `address`.
 * openpgp.js getSigningKey checks the chain: primary not revoked/expired, a
 * valid self-signature on the address's user ID, and for subkeys a valid
 * binding with the signing flag.
 */
export async function signerEntries(ring: KeyRing, date: Date): Promise<SignerEntry[]> {
  const out: SignerEntry[] = []
  for (const key of ring.keys) {
    const primaryFingerprint = key.getFingerprint().toUpperCase()
    const packets = [key, ...key.getSubkeys()]
    for (const k of packets) out.push(await entryFor(key, k, primaryFingerprint, ring.address, date))
  }
  return out
}

async function entryFor(
  key: openpgp.PublicKey,
  k: openpgp.PublicKey | openpgp.Subkey,
  primaryFingerprint: string,
  email: string,
  date: Date,
): Promise<SignerEntry> {
  const keyId = k.getKeyID()
  const base = {
    keyId: keyId.toHex().toUpperCase(),
    fingerprint: k.getFingerprint().toUpperCase(),
    primaryFingerprint,
    created: Math.floor(k.getCreationTime().getTime() / 1000),
    native: nativeKeyFromPacket(k.keyPacket.write()),
    key,
  }
  try {
    await key.getSigningKey(keyId, date, { email })
    return { ...base, status: 'valid' }
  } catch (e) {
    return { ...base, ...(await whyNot(key, k, date, e)) }
  }
}

/** Names the reason a (sub)key may not sign, for the result's reason text. */
async function whyNot(
  key: openpgp.PublicKey,
  k: openpgp.PublicKey | openpgp.Subkey,
  date: Date,
  e: unknown,
): Promise<{ status: SignerStatus; detail: string }> {
  const msg = e instanceof Error ? e.message : String(e)
  if (await key.isRevoked(undefined, undefined, date).catch(() => false))
    return { status: 'revoked', detail: 'the key is revoked' }
  // The typings demand a signature and key; openpgp.js checks all revocations without them.
  const subkey = k as openpgp.Subkey
  if (k !== key && (await subkey.isRevoked(undefined as never, undefined as never, date).catch(() => false)))
    return { status: 'revoked', detail: 'the signing subkey is revoked' }
  if (/expired/i.test(msg))
    return {
      status: 'expired',
      detail: msg.includes('Subkey') ? 'the signing subkey has expired' : 'the key has expired',
    }
  if (/revoked/i.test(msg)) return { status: 'revoked', detail: 'the key or its user ID is revoked' }
  return { status: 'not_signing', detail: `the key may not sign (${msg.replace(/^.*: /, '')})` }
}
