/**
 * The benchmark message: about 2 KB, PGP/MIME-signed (RFC 3156) by the From
 * address with an Ed25519 key, and DKIM-signed too, so each verifier in the
 * comparison (linksec, OpenDKIM, haraka-plugin-dkim) has a real signature to
 * check in the same bytes. Written once per run into a scratch directory with
 * the public keys the verifiers need locally (no WKD); the DKIM key also as
 * the TXT record a loopback DNS server serves (bench/lib/dns-lab.ts).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as openpgp from 'openpgp'
import { dkimKeyPair, dkimSign } from './dkim-sign'

export const SENDER = 'alice@example.org'
export const RECIPIENT = 'bob@example.net'
const DKIM_DOMAIN = 'example.org'
const DKIM_SELECTOR = 'bench'

export interface BenchMessage {
  dir: string
  /** The message with LF line ends (smtp-source -F sends CRLF). */
  file: string
  text: string
  /** Armored OpenPGP public key of SENDER. */
  publicKeyFile: string
  publicKeyArmored: string
  /** OpenDKIM TestPublicKeys file ("bench._domainkey.example.org v=DKIM1; ..."). */
  dkimKeysFile: string
  /** The same key as a DNS TXT record, for verifiers that look it up (haraka-plugin-dkim). */
  dkimRecord: { name: string; txt: string }
  bytes: number
}

/** Plain-text body lines of fixed content, enough to bring the message to ~2 KB. */
function bodyLines(count: number): string[] {
  return Array.from(
    { length: count },
    (_, i) =>
      `Line ${String(i + 1).padStart(2, '0')} of the linksec benchmark message, signed by its author.`,
  )
}

/**
 * The signed MIME entity, CRLF-canonical as RFC 3156 §5 requires for signing.
 * It ends in CRLF and is followed by another CRLF before the boundary: that
 * second CRLF belongs to the delimiter (RFC 2046 §5.1.1), so the signed bytes
 * are exactly this string.
 */
function innerPart(): string {
  const head = ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 7bit', '']
  return [...head, ...bodyLines(11)].join('\r\n') + '\r\n'
}

async function pgpMime(): Promise<{ message: string; publicKeyArmored: string }> {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: 'Alice', email: SENDER }],
    format: 'armored',
  })
  const key = await openpgp.readPrivateKey({ armoredKey: privateKey })
  const inner = innerPart()
  const unsigned = await openpgp.createMessage({ binary: Buffer.from(inner) })
  // As a string: openpgp's sign() types name @openpgp/web-stream-tools, which is not installed.
  const signature = (await openpgp.sign({
    message: unsigned,
    signingKeys: key,
    detached: true,
    format: 'armored',
  })) as string
  return { message: assemble(inner, signature), publicKeyArmored: publicKey }
}

function assemble(inner: string, signature: string): string {
  const boundary = 'linksec-bench-boundary'
  const headers = [
    `From: Alice <${SENDER}>`,
    `To: Bob <${RECIPIENT}>`,
    'Subject: linksec benchmark message',
    'Date: Sun, 22 Nov 2026 10:00:00 +0000',
    'Message-ID: <bench-1@example.org>',
    'MIME-Version: 1.0',
    `Content-Type: multipart/signed; boundary="${boundary}"; micalg=pgp-sha256;`,
    ' protocol="application/pgp-signature"',
  ]
  const sigPart = ['Content-Type: application/pgp-signature; name="signature.asc"', '', signature.trim()]
  const lines = [...headers, '', `--${boundary}`, inner, `--${boundary}`, ...sigPart]
  lines.push(`--${boundary}--`, '')
  return lines.join('\r\n').replace(/\r\n/g, '\n')
}

/** DKIM-signs the message and writes the OpenDKIM TestPublicKeys file for its key. */
function signDkim(
  dir: string,
  message: string,
): { text: string; keysFile: string; name: string; txt: string } {
  const { privateKeyPem, txt } = dkimKeyPair()
  const text = dkimSign(message, { domain: DKIM_DOMAIN, selector: DKIM_SELECTOR, privateKeyPem })
  const name = `${DKIM_SELECTOR}._domainkey.${DKIM_DOMAIN}`
  const keysFile = path.join(dir, 'dkim-keys.txt')
  fs.writeFileSync(keysFile, `${name} ${txt}\n`)
  return { text, keysFile, name, txt }
}

export async function writeBenchMessage(dir: string): Promise<BenchMessage> {
  fs.mkdirSync(dir, { recursive: true })
  const { message, publicKeyArmored } = await pgpMime()
  const dkim = signDkim(dir, message)
  const text = dkim.text
  const file = path.join(dir, 'message.eml')
  fs.writeFileSync(file, text)
  const publicKeyFile = path.join(dir, 'alice.asc')
  fs.writeFileSync(publicKeyFile, publicKeyArmored)
  const bytes = Buffer.byteLength(text.replace(/\n/g, '\r\n'))
  const dkimRecord = { name: dkim.name, txt: dkim.txt }
  return { dir, file, text, publicKeyFile, publicKeyArmored, dkimKeysFile: dkim.keysFile, dkimRecord, bytes }
}

/**
 * The inner text/plain part of the benchmark message (~1 KB) from SENDER, unsigned (what a user's
 * client submits), for the signing benchmark: the signer under test adds the
 * signature.
 */
export function writePlainMessage(dir: string): { file: string; text: string; bytes: number } {
  fs.mkdirSync(dir, { recursive: true })
  const headers = [
    `From: Alice <${SENDER}>`,
    `To: Bob <${RECIPIENT}>`,
    'Subject: linksec signing benchmark message',
    'Date: Sun, 22 Nov 2026 10:00:00 +0000',
    'Message-ID: <bench-sign-1@example.org>',
    'MIME-Version: 1.0',
  ]
  const text = [...headers, innerPart()].join('\r\n').replace(/\r\n/g, '\n')
  const file = path.join(dir, 'plain.eml')
  fs.writeFileSync(file, text)
  return { file, text, bytes: Buffer.byteLength(text.replace(/\n/g, '\r\n')) }
}
