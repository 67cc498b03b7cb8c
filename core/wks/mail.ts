/**
 * The Web Key Service messages (draft-koch-openpgp-webkey-service §4), in
 * the form GnuPG's gpg-wks-client 2.2 writes and reads (tools/gpg-wks-
 * client.c, wks-receive.c, gpg-wks-server.c, read for the wire format):
 *
 * - submission (§4.2): From the user, To the submission address,
 *   `Wks-Draft-Version: 3`, multipart/encrypted (RFC 3156 §4) to the
 *   submission key; the plaintext is an entity `Content-Type:
 *   application/pgp-keys` holding the armored key. An unencrypted
 *   application/pgp-keys body is taken too (the draft's older form).
 * - confirmation request (§4.3, draft 3 form): From the submission address,
 *   `WKS-Phase: confirm`, RFC 3156 multipart/signed by the submission key
 *   over multipart/mixed { text/plain for people, application/vnd.gnupg.wks
 *   whose body is the name-value request armored and encrypted to the
 *   submitted key }. gpg-wks-client decrypts it and answers only when the
 *   key that decrypted it is the `fingerprint:` the request names.
 * - confirmation response (§4.4): multipart/encrypted to the submission key,
 *   plaintext `Content-Type: application/vnd.gnupg.wks` with `type:
 *   confirmation-response`, `sender:`, `address:`, `nonce:`.
 */
import * as crypto from 'node:crypto'
import * as openpgp from 'openpgp'
import { describeError } from '../errors'
import { decodeTransfer, headerValue, parseContentType, parseEntity, splitMultipart, toCrlf } from '../mime'
import { applySigned } from '../sign/apply'
import { signMessage, type SigningKey } from '../sign'

/** Plaintext bigger than this is not a key submission (gpg-wks-server caps at 64 KiB too). */
export const MAX_PLAINTEXT = 64 * 1024

export type WksContent =
  | { kind: 'key'; data: Buffer }
  | { kind: 'wks'; fields: Map<string, string>; encrypted: boolean }
  | { kind: 'bad'; reason: string }

/** What a message to the submission address carries, decrypted with the submission key. */
export async function readWksContent(raw: Buffer, submissionKey: openpgp.PrivateKey): Promise<WksContent> {
  const top = parseEntity(toCrlf(raw))
  const ct = parseContentType(headerValue(top.headers, 'content-type'))
  if (ct.type === 'multipart/encrypted') {
    const parts = ct.params.boundary ? splitMultipart(top.body, ct.params.boundary).parts : []
    if (parts.length < 2)
      return { kind: 'bad', reason: 'a multipart/encrypted message without its two parts (RFC 3156 §4)' }
    const armored = parseEntity(parts[1]!).body.toString('latin1')
    let plain: Buffer
    try {
      plain = await decrypt(armored, submissionKey)
    } catch (e) {
      return { kind: 'bad', reason: `it cannot be decrypted with the submission key (${describeError(e)})` }
    }
    return contentOf(parseEntity(toCrlf(plain)), true)
  }
  return contentOf(top, false)
}

function contentOf(e: ReturnType<typeof parseEntity>, encrypted: boolean): WksContent {
  const ct = parseContentType(headerValue(e.headers, 'content-type'))
  const body = decodeTransfer(e.body, headerValue(e.headers, 'content-transfer-encoding'))
  if (ct.type === 'application/pgp-keys') return { kind: 'key', data: body }
  if (ct.type === 'application/vnd.gnupg.wks') return { kind: 'wks', fields: nameValues(body), encrypted }
  return {
    kind: 'bad',
    reason: `a ${ct.type} part; a submission carries application/pgp-keys, a confirmation application/vnd.gnupg.wks`,
  }
}

async function decrypt(armored: string, key: openpgp.PrivateKey): Promise<Buffer> {
  const message = await openpgp.readMessage({ armoredMessage: armored })
  const out = await openpgp.decrypt({ message, decryptionKeys: key, format: 'binary' })
  const data = Buffer.from(out.data)
  if (data.length > MAX_PLAINTEXT) throw new Error(`the plaintext is larger than ${MAX_PLAINTEXT} bytes`)
  return data
}

/** `name: value` lines (the draft's §4.3 format); names lower-cased, the first of each kept. */
export function nameValues(body: Buffer): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of body.toString('utf8').split(/\r?\n/)) {
    const m = /^([A-Za-z0-9-]+):[ \t]*(.*?)[ \t]*$/.exec(line)
    if (m && !out.has(m[1]!.toLowerCase())) out.set(m[1]!.toLowerCase(), m[2]!)
  }
  return out
}

export interface RequestFacts {
  submissionAddress: string
  address: string
  fingerprint: string
  nonce: string
  /** The submitted key, to encrypt the request to. */
  key: openpgp.PublicKey
  signer: SigningKey
  date: Date
  hostname: string
}

const EXPLANATION =
  'This message was sent to confirm your request to publish your OpenPGP key.\r\n' +
  'If you did not ask for that, ignore it: nothing is published without an answer.\r\n' +
  '\r\n' +
  'Mail programs with Web Key Service support (gpg-wks-client --receive,\r\n' +
  'Thunderbird, Kleopatra) answer it by themselves.\r\n'

/** The confirmation request, a whole message (CRLF). */
export async function confirmationRequest(f: RequestFacts): Promise<Buffer> {
  const request =
    `type: confirmation-request\nsender: ${f.submissionAddress}\naddress: ${f.address}\n` +
    `fingerprint: ${f.fingerprint}\nnonce: ${f.nonce}\n`
  const encrypted = (await openpgp.encrypt({
    message: await openpgp.createMessage({ text: request }),
    encryptionKeys: f.key,
    date: f.date,
    format: 'armored',
  })) as string
  const boundary = `=_linksec_wks_${crypto.randomBytes(12).toString('hex')}`
  const plain = [
    `From: ${f.submissionAddress}`,
    `To: ${f.address}`,
    'Subject: Confirm your key publication',
    `Date: ${f.date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${crypto.randomBytes(12).toString('hex')}@${f.hostname}>`,
    'Wks-Draft-Version: 3',
    'WKS-Phase: confirm',
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    EXPLANATION.replace(/\r\n$/, ''),
    `--${boundary}`,
    'Content-Type: application/vnd.gnupg.wks',
    '',
    encrypted.replace(/\r?\n/g, '\r\n').replace(/\r\n$/, ''),
    `--${boundary}--`,
    '',
  ].join('\r\n')
  const raw = Buffer.from(plain, 'latin1')
  const signed = signMessage(raw, f.signer, { date: f.date })
  if (signed.kind !== 'signed')
    throw new Error(`the confirmation request could not be signed: ${signed.reason}`)
  return applySigned(raw, signed)
}
