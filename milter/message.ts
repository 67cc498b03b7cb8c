/**
 * The milter's side of the message pipeline: the plain MessageFacts
 * (core/message/facts.ts) of one message as Postfix handed it over, from the
 * session's macros, envelope, headers and body chunks.
 */
import type { TlsFacts } from '../core/inbound'
import type { MessageFacts } from '../core/message'
import type { Header, SessionFacts, Transaction } from './session'

/** All values of a header, by case-insensitive name, in message order. */
export function headerValues(headers: readonly Header[], name: string): string[] {
  const lower = name.toLowerCase()
  return headers.filter((h) => h.name.toLowerCase() === lower).map((h) => h.value)
}

/** RFC 8689: the MAIL parameter REQUIRETLS (valueless; case-insensitive). */
function hasRequireTlsParam(args: readonly string[]): boolean {
  return args.some((a) => /^requiretls$/i.test(a.trim()))
}

/** TLS facts from Postfix's HELO-stage macros (present after STARTTLS only). */
function tlsFactsFromMacros(get: (name: string) => string | undefined): TlsFacts {
  const bits = Number(get('{cipher_bits}'))
  const facts: TlsFacts = {
    version: get('{tls_version}') || undefined,
    cipher: get('{cipher}') || undefined,
    cipherBits: Number.isInteger(bits) && bits > 0 ? bits : undefined,
    certSubject: get('{cert_subject}') || undefined,
    certIssuer: get('{cert_issuer}') || undefined,
  }
  return Object.fromEntries(Object.entries(facts).filter(([, v]) => v !== undefined))
}

/**
 * The message as received: header lines, the blank line, the body; the body copied once.
 * Header values arrived as UTF-8 on the wire and go back as UTF-8 (core/mime.ts decodes them).
 */
export function rawMessage(tx: Pick<Transaction, 'headers' | 'body'>): Buffer {
  const head = tx.headers.map((h) => `${h.name}: ${h.value.replace(/\r?\n/g, '\r\n')}\r\n`).join('')
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'utf8'), ...tx.body])
}

/**
 * The pipeline's facts from the session's state at end of message;
 * `onJoin` is told the message bytes when a step first reads them.
 */
export function messageFacts(s: SessionFacts, tx: Transaction, onJoin?: (raw: Buffer) => void): MessageFacts {
  const get = (name: string) => s.macros.get(name)
  const conn = s.connection
  return {
    queueId: get('i'),
    client: {
      host: conn?.host,
      address: conn && conn.family !== 'unknown' ? conn.address : undefined,
      helo: s.helo,
    },
    // Postfix does not tell a milter whether it relays for the client.
    submitter: { authUser: get('{auth_authen}') || undefined },
    tls: tlsFactsFromMacros(get),
    sender: tx.sender,
    requiretls: hasRequireTlsParam(tx.senderArgs),
    recipients: tx.recipients.map((r) => r.address),
    headerValues: (name) => headerValues(tx.headers, name),
    message: () => {
      const raw = rawMessage(tx)
      onJoin?.(raw)
      return Promise.resolve(raw)
    },
    bodyTruncated: tx.bodyTruncated,
  }
}
