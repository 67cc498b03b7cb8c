/**
 * What Haraka knows of the inbound link, as the TLS facts the message
 * pipeline's inbound-link step (core/message/inbound-link.ts) reads; the
 * Authentication-Results text is then exactly the milter's.
 */
import type { TlsFacts } from '../core/inbound'
import type { HarakaConnection } from './haraka'

/**
 * Symmetric key bits of an OpenSSL cipher name. Node's getCipher() has no
 * bit count, Postfix's {cipher_bits} macro has; deriving it keeps the two
 * adapters' headers alike. Undefined when the name does not say.
 */
export function cipherBits(name: string | undefined): number | undefined {
  if (!name) return undefined
  if (/AES[_-]?256|CHACHA20|CAMELLIA[_-]?256|ARIA[_-]?256/i.test(name)) return 256
  if (/AES[_-]?128|CAMELLIA[_-]?128|ARIA[_-]?128/i.test(name)) return 128
  return undefined
}

/** What Haraka knows of the inbound link (connection.tls, set by the tls plugin). */
export function tlsFactsOf(conn: HarakaConnection): TlsFacts {
  const tls = conn.tls
  if (!tls?.enabled) return {}
  const cipher = tls.cipher ?? {}
  const facts: TlsFacts = { version: cipher.version ?? 'TLS', cipher: cipher.name }
  const bits = cipherBits(cipher.name)
  if (bits !== undefined) facts.cipherBits = bits
  // Like Postfix's {cert_subject}: only a client certificate that verified.
  if (tls.verified && tls.peerCertificate) {
    facts.certSubject = tls.peerCertificate.subject?.CN
    facts.certIssuer = tls.peerCertificate.issuer?.CN
  }
  return facts
}
