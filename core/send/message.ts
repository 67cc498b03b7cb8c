/**
 * The message `linksec send` reads on stdin, made ready to leave: Bcc
 * removed (its addresses become recipients with `-t`), Date and Message-ID
 * added when missing (RFC 5322 §3.6), the sender's tag read
 * (`Link-Security-Required`, `TLS-Required`), then signed (core/sign) and,
 * when asked, encrypted with openpgp.js as RFC 3156 §4 multipart/encrypted
 * with RFC 9788 header protection (`hp="cipher"`): outside only From, To,
 * Date, Message-ID and the transport tags the hops enforce.
 */
import * as crypto from 'node:crypto'
import addressparser from 'nodemailer/lib/addressparser'
import * as openpgp from 'openpgp'
import { messageRequirement, REQUIREMENT_HEADER, TLS_REQUIRED_HEADER, type Requirement } from '../levels'
import { fromAddress, type MailAddress } from '../keys'
import { signMessage, type SigningKey } from '../sign'
import { applySigned } from '../sign/apply'
import { rawFields, splitEntity, toCrlf, type RawField } from '../mime'

export interface Outgoing {
  raw: Buffer
  /** The single From mailbox, when there is exactly one. */
  from?: MailAddress
  /** To, Cc and Bcc addresses (for `-t`). */
  headerRecipients: string[]
  requirement: Requirement
}

const fieldValue = (f: RawField) =>
  f.raw
    .slice(f.raw.indexOf(':') + 1)
    .replace(/\r\n$/, '')
    .trim()

function addressesIn(fields: RawField[], names: string[]): string[] {
  const out: string[] = []
  const walk = (list: ReturnType<typeof addressparser>) => {
    for (const a of list) {
      if ('group' in a && a.group) walk(a.group)
      else if ('address' in a && a.address) out.push(a.address)
    }
  }
  for (const f of fields) if (names.includes(f.key)) walk(addressparser(fieldValue(f).replace(/\r\n/g, '')))
  return out
}

/** RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF. */
const MAX_LINE = 998

/**
 * Why INPUT cannot be sent as a mail message, or undefined when it can: it
 * must start with header fields (RFC 5322 §2.2: a name of printable ASCII
 * and a colon, or a folded continuation), hold no NUL (RFC 5322 §2.1, no
 * server takes it), and keep every line within 998 octets. Sending such a
 * message would only get it refused or mangled at some hop, so it is
 * refused here with the line named.
 */
export function unparsable(input: Buffer): string | undefined {
  const nul = input.indexOf(0)
  if (nul >= 0)
    return `the message holds a NUL byte at offset ${nul} (RFC 5322 §2.1); encode binary data in a MIME part`
  const text = input.toString('latin1')
  const lines = text.split(/\r?\n/)
  const quote = (l: string) => JSON.stringify(l.length > 60 ? `${l.slice(0, 60)}…` : l)
  let inHeader = true
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!
    if (l.length > MAX_LINE)
      return `line ${i + 1} is ${l.length} octets long, more than SMTP carries (998, RFC 5321 §4.5.3.1.6); encode it (quoted-printable or base64)`
    if (!inHeader) continue
    if (l === '') {
      if (i === 0)
        return 'the message starts with an empty line: it has no header fields (From:, To:, Subject: …)'
      inHeader = false
    } else if (/^[ \t]/.test(l)) {
      if (i === 0) return `the message starts with a folded line ${quote(l)}, not a header field`
    } else if (!/^[\x21-\x39\x3b-\x7e]+[ \t]*:/.test(l))
      return i === 0
        ? `the message does not start with header fields (RFC 5322 §2.2): line 1 is ${quote(l)}${l.startsWith('From ') ? ' (an mbox "From " line: remove it)' : ''}`
        : `line ${i + 1} of the header is not a header field (RFC 5322 §2.2, "Name: value"): ${quote(l)}`
  }
  return undefined
}

export function prepareMessage(
  input: Buffer,
  opts: { now: Date; hostname: string; /** `--requiretls` (RFC 8689 §4.1). */ requireTls?: boolean },
): Outgoing {
  const { head, body } = splitEntity(toCrlf(input))
  const all = rawFields(head)
  const headerRecipients = addressesIn(all, ['to', 'cc', 'bcc'])
  const fields = all
    .filter((f) => f.key !== 'bcc')
    .map((f) => (f.raw.endsWith('\r\n') ? f.raw : `${f.raw}\r\n`))
  const has = (k: string) => all.some((f) => f.key === k)
  if (!has('date')) fields.push(`Date: ${opts.now.toUTCString().replace('GMT', '+0000')}\r\n`)
  if (!has('message-id'))
    fields.push(`Message-ID: <${crypto.randomBytes(12).toString('hex')}@${opts.hostname}>\r\n`)
  const froms = all.filter((f) => f.key === 'from')
  const requirement = messageRequirement({
    requiretlsParam: opts.requireTls === true,
    requirementHeaders: all.filter((f) => f.key === REQUIREMENT_HEADER.toLowerCase()).map(fieldValue),
    tlsRequiredHeaders: all.filter((f) => f.key === TLS_REQUIRED_HEADER.toLowerCase()).map(fieldValue),
  })
  return {
    raw: Buffer.concat([Buffer.from(`${fields.join('')}\r\n`, 'latin1'), body]),
    from: froms.length === 1 ? fromAddress(fieldValue(froms[0]!)) : undefined,
    headerRecipients,
    requirement,
  }
}

export function signOutgoing(raw: Buffer, key: SigningKey, protectedHeaders: boolean): Buffer | string {
  const r = signMessage(raw, key, { protectedHeaders })
  if (r.kind === 'broken') return r.reason
  return r.kind === 'signed' ? applySigned(raw, r) : raw
}

/** Fields that stay outside an encrypted message (RFC 9788 hp="cipher"; the tags are for the hops). */
const OUTER = new Set(['from', 'to', 'date', 'message-id', 'link-security-required', 'tls-required'])

/**
 * Encrypts to `keys` (signed inside first when `signer` is given). The
 * protected fields travel inside; the Content-Type of the protected part says
 * hp="cipher". Throws when a key cannot encrypt.
 */
export async function encryptOutgoing(
  raw: Buffer,
  keys: openpgp.PublicKey[],
  signer: SigningKey | undefined,
): Promise<Buffer> {
  const { head, body } = splitEntity(toCrlf(raw))
  const top = rawFields(head)
  const line = (f: RawField) => (f.raw.endsWith('\r\n') ? f.raw : `${f.raw}\r\n`)
  let payload: Buffer
  if (signer) {
    const r = signMessage(raw, signer, { protectedHeaders: true, hp: 'cipher' })
    if (r.kind === 'broken') throw new Error(`the message cannot be signed: ${r.reason}`)
    const signed = r.kind === 'signed' ? applySigned(raw, r) : raw
    const s = splitEntity(signed)
    // The signed entity without the fields that stay outside (its part 1 carries the protected copies).
    const inner = rawFields(s.head).filter((f) => f.key.startsWith('content-') || f.key === 'mime-version')
    payload = Buffer.concat([Buffer.from(`${inner.map(line).join('')}\r\n`, 'latin1'), s.body])
  } else {
    const content = top.filter((f) => f.key.startsWith('content-'))
    const ct = content.find((f) => f.key === 'content-type')
    const marked = ct
      ? `${line(ct).replace(/\r\n$/, '')}; hp="cipher"\r\n`
      : 'Content-Type: text/plain; charset=utf-8; hp="cipher"\r\n'
    const protectedFields = top.filter((f) => !f.key.startsWith('content-') && f.key !== 'mime-version')
    const rest = content.filter((f) => f !== ct)
    payload = Buffer.concat([
      Buffer.from(`${[...protectedFields.map(line), marked, ...rest.map(line)].join('')}\r\n`, 'latin1'),
      body,
    ])
  }
  const armored: string = (await openpgp.encrypt({
    message: await openpgp.createMessage({ binary: new Uint8Array(payload) }),
    encryptionKeys: keys,
    format: 'armored',
  })) as string
  const boundary = `=_linksec_enc_${crypto.randomBytes(12).toString('base64url')}`
  const outer = top.filter((f) => OUTER.has(f.key)).map(line)
  outer.push(
    'MIME-Version: 1.0\r\n',
    `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="${boundary}"\r\n`,
  )
  const text =
    'This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n' +
    `--${boundary}\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n` +
    `--${boundary}\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n` +
    'Content-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename="encrypted.asc"\r\n\r\n' +
    `${armored.replace(/\r?\n/g, '\r\n')}\r\n--${boundary}--\r\n`
  return Buffer.from(`${outer.join('')}\r\n${text}`, 'latin1')
}
