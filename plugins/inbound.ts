/**
 * The inbound duty at end of data (DESIGN §3): a tagged message that came in
 * without TLS is refused 550 5.7.10; the link's TLS facts are recorded in an
 * Authentication-Results field of our own, with exactly the milter's text
 * (core/inbound.ts); incoming A-R fields claiming our authserv-id are removed
 * (RFC 8601 §5), including the copies Haraka renames to
 * Original-Authentication-Results (connection.ini clean_auth_results).
 */
import { checkInboundLink, forgedAuthResults, isTls, tlsAuthResults, type TlsFacts } from '../core/inbound'
import { CONTINUE, type HeaderEdit, type MessageDecision } from '../core/verdict'
import type { Duty, MessageContext } from './duty'
import type { HarakaConnection } from './haraka'

export const AUTH_RESULTS = 'Authentication-Results'
export const ORIGINAL_AUTH_RESULTS = 'Original-Authentication-Results'

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

/** Deletions of every A-R (and Original-A-R) field that claims our authserv-id. */
export function forgedResultEdits(m: Pick<MessageContext, 'headers'>, authservId: string): HeaderEdit[] {
  const edits: HeaderEdit[] = []
  for (const name of [AUTH_RESULTS, ORIGINAL_AUTH_RESULTS]) {
    for (const index of forgedAuthResults(authservId, m.headers(name)))
      edits.push({ op: 'delete', name, index })
  }
  return edits
}

function countInbound(m: MessageContext): void {
  m.rt.metrics.inboundTls.inc({ adapter: 'haraka', tls: isTls(m.tls) ? 'yes' : 'no' })
}

/** The end-of-data step: reject tagged plaintext, else record the link. */
export function inboundStep(m: MessageContext): MessageDecision {
  const cfg = m.rt.config
  countInbound(m)
  if (cfg.inbound.reject_tagged_plaintext) {
    const verdict = checkInboundLink(m.requirement, m.tls)
    if (verdict.action !== 'continue') {
      const level = m.requirement.source === 'requiretls' ? 'requiretls' : String(m.requirement.level)
      m.rt.metrics.taggedMessages.inc({ level, outcome: 'rejected_plaintext' })
      return { verdict, headers: [] }
    }
  }
  const authservId = cfg.main.authserv_id
  // Forged fields go whatever we add: nobody may speak in our name.
  const headers = forgedResultEdits(m, authservId)
  if (cfg.inbound.tls_results) {
    headers.push({ op: 'prepend', name: AUTH_RESULTS, value: tlsAuthResults(authservId, m.tls) })
  }
  return { verdict: CONTINUE, headers }
}

export const inboundDuty: Duty = { name: 'inbound', message: inboundStep }
