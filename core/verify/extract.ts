/**
 * Finds what a message signs and with which signature: PGP/MIME
 * multipart/signed at the top level (RFC 3156 §5; the first part byte-exact,
 * whatever it holds, multipart/encrypted included) or an inline cleartext
 * signature over the whole text/plain body (RFC 9580 §7). Signatures on
 * nested parts are ignored: they would not cover what the reader sees.
 */
import { dearmor, PacketError } from './packets'
import {
  decodeTransfer,
  headerValue,
  parseContentType,
  parseEntity,
  splitMultipart,
  type Entity,
  type HeaderField,
} from '../mime'

export type SignedForm =
  | { kind: 'none'; reason: string }
  | {
      kind: 'signed'
      form: 'pgp-mime' | 'inline'
      /** The exact octets the signature covers (CRLF canonical). */
      data: Buffer
      /** The binary signature block. */
      signature: Buffer
      /** MIME headers of the signed part (PGP/MIME), where protected headers live. */
      signedHeaders: HeaderField[]
      /** Content-Type of the signed part, e.g. "multipart/encrypted". */
      innerType: string
    }
  /** Structure present but broken: permerror. */
  | { kind: 'broken'; reason: string }
  /** A signature that cannot be checked here: neutral. */
  | { kind: 'unverifiable'; reason: string }

export function findSignedForm(message: Entity): SignedForm {
  const ct = parseContentType(headerValue(message.headers, 'content-type'))
  if (ct.type === 'multipart/signed') return pgpMime(message, ct.params)
  if (ct.type === 'multipart/encrypted')
    return {
      kind: 'unverifiable',
      reason: 'encrypted message; a signature inside it cannot be checked in transit',
    }
  if (ct.type === 'text/plain') return inline(message)
  return { kind: 'none', reason: 'no OpenPGP signature' }
}

function pgpMime(message: Entity, params: Record<string, string>): SignedForm {
  const protocol = (params.protocol ?? '').toLowerCase()
  if (protocol !== 'application/pgp-signature')
    return protocol === ''
      ? { kind: 'broken', reason: 'multipart/signed without a protocol parameter' }
      : { kind: 'none', reason: `not an OpenPGP signature (${protocol})` }
  if (!params.boundary) return { kind: 'broken', reason: 'multipart/signed without a boundary' }
  const mp = splitMultipart(message.body, params.boundary)
  if (!mp.closed || mp.parts.length !== 2)
    return { kind: 'broken', reason: 'multipart/signed must hold exactly two parts and a closing boundary' }
  const [signed, sigPart] = mp.parts as [Buffer, Buffer]
  const sigEntity = parseEntity(sigPart)
  const sigType = parseContentType(headerValue(sigEntity.headers, 'content-type')).type
  if (sigType !== 'application/pgp-signature')
    return { kind: 'broken', reason: `second part is ${sigType}, not application/pgp-signature` }
  const armored = decodeTransfer(sigEntity.body, headerValue(sigEntity.headers, 'content-transfer-encoding'))
  const signature = dearmorOrBroken(armored.toString('latin1'))
  if (!Buffer.isBuffer(signature)) return signature
  const inner = parseEntity(signed)
  return {
    kind: 'signed',
    form: 'pgp-mime',
    data: signed,
    signature,
    signedHeaders: inner.headers,
    innerType: parseContentType(headerValue(inner.headers, 'content-type')).type,
  }
}

function dearmorOrBroken(text: string): Buffer | SignedForm {
  try {
    return dearmor(text)
  } catch (e) {
    if (e instanceof PacketError) return { kind: 'broken', reason: `unreadable signature: ${e.message}` }
    throw e
  }
}

const CLEAR_BEGIN = '-----BEGIN PGP SIGNED MESSAGE-----'
const SIG_BEGIN = '-----BEGIN PGP SIGNATURE-----'
const SIG_END = '-----END PGP SIGNATURE-----'

/** Every armor line the inline check looks for starts with this. */
const ARMOR_MARK = Buffer.from('-----BEGIN PGP ')

function inline(message: Entity): SignedForm {
  const body = decodeTransfer(message.body, headerValue(message.headers, 'content-transfer-encoding'))
  // Most plain-text mail carries no armor at all: say so without splitting the body into lines.
  if (body.indexOf(ARMOR_MARK) === -1) return { kind: 'none', reason: 'no OpenPGP signature' }
  const lines = body.toString('latin1').split(/\r?\n/)
  const begin = lines.findIndex((l) => l.trimEnd() === CLEAR_BEGIN)
  if (begin === -1) {
    return lines.some((l) => l.trimEnd() === '-----BEGIN PGP MESSAGE-----')
      ? { kind: 'unverifiable', reason: 'inline OpenPGP message; only cleartext signatures are checked' }
      : { kind: 'none', reason: 'no OpenPGP signature' }
  }
  const sigAt = lines.findIndex((l, i) => i > begin && l.trimEnd() === SIG_BEGIN)
  const endAt = lines.findIndex((l, i) => i > sigAt && l.trimEnd() === SIG_END)
  if (sigAt === -1 || endAt === -1)
    return { kind: 'broken', reason: 'cleartext signature without its signature block' }
  const outside = [...lines.slice(0, begin), ...lines.slice(endAt + 1)]
  if (outside.some((l) => l.trim() !== ''))
    return { kind: 'unverifiable', reason: 'the message has text outside its signed block' }
  const text = cleartextData(lines.slice(begin + 1, sigAt))
  if (text === undefined) return { kind: 'broken', reason: 'cleartext signature header is malformed' }
  const signature = dearmorOrBroken(lines.slice(sigAt, endAt + 1).join('\r\n'))
  if (!Buffer.isBuffer(signature)) return signature
  return { kind: 'signed', form: 'inline', data: text, signature, signedHeaders: [], innerType: 'text/plain' }
}

/**
 * RFC 9580 §7.1/7.2: skip the armor headers ("Hash: ...") up to the blank
 * line, undo dash-escaping, drop trailing blanks per line, join with CRLF
 * without a final line break.
 */
function cleartextData(lines: string[]): Buffer | undefined {
  let i = 0
  while (i < lines.length && lines[i]!.trim() !== '') {
    if (!/^[A-Za-z][A-Za-z0-9-]*: /.test(lines[i]!)) return undefined
    i++
  }
  if (i >= lines.length) return undefined
  const text = lines
    .slice(i + 1)
    .map((l) => (l.startsWith('- ') ? l.slice(2) : l).replace(/[ \t]+$/, ''))
    .join('\r\n')
  return Buffer.from(text, 'latin1')
}
