/**
 * Checks a detached signature block over canonical data against the sender's
 * key ring: the issuer must be one of the ring's (sub)keys, valid now, the
 * signature's own times must hold, and the math must verify. Native math for
 * Ed25519 and RSA, openpgp.js for the rest.
 */
import * as openpgp from 'openpgp'
import { LinksecError } from '../errors'
import type { KeyRing, SignerEntry } from '../keys/material'
import { freshSigners, signersOf, type SignerIndex } from '../keys/signers'
import { SignedDataHashes, verifyNative } from './native'
import { PacketError, readSignatures, type SignaturePacket } from './packets'

export type CheckResult = 'pass' | 'fail' | 'permerror' | 'neutral'

export interface SignatureCheck {
  result: CheckResult
  /** Words for the reply and the header's reason=. */
  reason: string
  /** Primary key fingerprint of the signer (pass, or a fail tied to our key). */
  fingerprint?: string
}

/** Tolerated sender clock skew for signature creation times. */
const CLOCK_SKEW_S = 300

/**
 * Signatures considered per message. A signer adds one, a forwarder or a
 * second key a few more; a block with more is refused (permerror) before any
 * is checked, so a flood of copies cannot make one message cost N key
 * lookups and N public-key operations.
 */
export const MAX_SIGNATURES = 8

/** Parses the signature block; malformed or a flood -> permerror, unsupported format -> neutral. */
export function parseSignatureBlock(binary: Buffer): SignaturePacket[] | SignatureCheck {
  let sigs: SignaturePacket[]
  try {
    sigs = readSignatures(binary, MAX_SIGNATURES)
  } catch (e) {
    if (e instanceof PacketError)
      return e.unsupported
        ? { result: 'neutral', reason: `unsupported signature: ${e.message}` }
        : { result: 'permerror', reason: `malformed signature: ${e.message}` }
    throw e
  }
  if (sigs.length > MAX_SIGNATURES) return tooMany()
  return sigs
}

function tooMany(): SignatureCheck {
  return {
    result: 'permerror',
    reason: `the signature block holds more than ${MAX_SIGNATURES} signatures; none was checked`,
  }
}

export interface CheckOptions {
  /** Epoch ms after which no further signature is started ([verify] deadline_ms). */
  deadlineAt?: number
  signal?: AbortSignal
}

/**
 * Verifies the signature packets (at most MAX_SIGNATURES); the message
 * passes when one of them is good. The data is hashed once per hash
 * algorithm for all of them; between signatures the event loop gets a turn
 * and the deadline is checked, so other sessions keep being served.
 */
export async function checkSignatures(
  data: Buffer,
  sigs: SignaturePacket[],
  ring: KeyRing,
  nowMs: number,
  opts: CheckOptions = {},
): Promise<SignatureCheck> {
  if (sigs.length > MAX_SIGNATURES) return tooMany()
  const index = freshSigners(ring, nowMs) ?? (await signersOf(ring, nowMs))
  const hashes = new SignedDataHashes(data, sigs.length)
  let best: SignatureCheck | undefined
  for (const [i, sig] of sigs.entries()) {
    if (i > 0) await pause(opts)
    const c = await checkOne(hashes, sig, index, nowMs)
    if (c.result === 'pass') return c
    if (!best || (c.fingerprint && !best.fingerprint)) best = c
  }
  return best ?? { result: 'permerror', reason: 'no signature' }
}

/** Yields to the event loop; throws once the deadline has passed or the signal fired. */
async function pause(opts: CheckOptions): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve))
  if (opts.signal?.aborted || (opts.deadlineAt !== undefined && Date.now() >= opts.deadlineAt))
    throw new LinksecError(
      'LINKSEC_VERIFY_DEADLINE',
      'the signatures took longer than [verify] deadline_ms to check',
      { temporary: true },
    )
}

async function checkOne(
  hashes: SignedDataHashes,
  sig: SignaturePacket,
  index: SignerIndex,
  nowMs: number,
): Promise<SignatureCheck> {
  if (sig.sigType !== 0x00 && sig.sigType !== 0x01)
    return { result: 'permerror', reason: `not a document signature (type 0x${sig.sigType.toString(16)})` }
  const entry = issuerOf(sig, index)
  if (!entry)
    return {
      result: 'fail',
      reason: `signed by key ${sig.issuerFingerprint ?? sig.issuerKeyId ?? '(unnamed)'}, which is not the sender's key`,
    }
  const fingerprint = entry.primaryFingerprint
  if (entry.status !== 'valid')
    return { result: 'fail', reason: entry.detail ?? 'the key is not valid', fingerprint }
  const timing = checkTimes(sig, entry, nowMs)
  if (timing) return { result: 'fail', reason: timing, fingerprint }
  const ok = await mathHolds(hashes, sig, entry, nowMs)
  if (ok === 'weak_hash')
    return { result: 'fail', reason: 'the signature uses a weak hash algorithm', fingerprint }
  if (!ok)
    return { result: 'fail', reason: 'the signature does not match the message (altered?)', fingerprint }
  return { result: 'pass', reason: 'good signature', fingerprint }
}

/** The ring entry that made the signature: by fingerprint when given, else by key ID. */
function issuerOf(sig: SignaturePacket, index: SignerIndex): SignerEntry | undefined {
  const candidates = sig.issuerKeyId ? (index.byKeyId.get(sig.issuerKeyId) ?? []) : index.entries
  const matching = sig.issuerFingerprint
    ? candidates.filter((e) => e.fingerprint === sig.issuerFingerprint)
    : candidates
  return matching.find((e) => e.status === 'valid') ?? matching[0]
}

/** RFC 9580 §5.2.3.11/12 and key lifetime: a reason when the times do not hold. */
function checkTimes(sig: SignaturePacket, entry: SignerEntry, nowMs: number): string | undefined {
  const now = Math.floor(nowMs / 1000)
  if (sig.unknownCritical !== undefined)
    return `the signature carries an unknown critical subpacket (${sig.unknownCritical})`
  if (sig.created === undefined) return 'the signature has no creation time'
  if (sig.created > now + CLOCK_SKEW_S) return 'the signature was made in the future'
  if (sig.expiresIn > 0 && sig.created + sig.expiresIn <= now) return 'the signature has expired'
  if (sig.created < entry.created) return 'the signature is older than the key that made it'
  return undefined
}

async function mathHolds(
  hashes: SignedDataHashes,
  sig: SignaturePacket,
  entry: SignerEntry,
  nowMs: number,
): Promise<boolean | 'weak_hash'> {
  if (entry.native) {
    const r = verifyNative(sig, hashes, entry.native)
    if (r === 'valid') return true
    if (r === 'invalid') return false
    if (r === 'weak_hash') return 'weak_hash'
  }
  return verifyWithOpenpgp(hashes.data, sig, entry, nowMs)
}

/** Fallback for algorithms the native path does not handle (ECDSA, Ed448, ...). */
async function verifyWithOpenpgp(
  data: Buffer,
  sig: SignaturePacket,
  entry: SignerEntry,
  nowMs: number,
): Promise<boolean> {
  try {
    const message = await openpgp.createMessage({ binary: new Uint8Array(data) })
    const signature = await openpgp.readSignature({ binarySignature: framePacket(2, sig.raw) })
    const r = await openpgp.verify({ message, signature, verificationKeys: entry.key, date: new Date(nowMs) })
    return (await r.signatures[0]?.verified) === true
  } catch {
    return false
  }
}

/** A new-format packet header around a body (RFC 9580 §4.2.1). */
function framePacket(tag: number, body: Buffer): Uint8Array {
  const n = body.length
  let len: Buffer
  if (n < 192) len = Buffer.from([n])
  else if (n < 8384) len = Buffer.from([((n - 192) >> 8) + 192, (n - 192) & 0xff])
  else {
    len = Buffer.alloc(5)
    len[0] = 255
    len.writeUInt32BE(n, 1)
  }
  return new Uint8Array(Buffer.concat([Buffer.from([0xc0 | tag]), len, body]))
}
