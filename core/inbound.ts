/**
 * Inbound link facts and the decisions both adapters make from them: the
 * `x-tls` Authentication-Results header and the rule that a tagged message
 * must have arrived over TLS (docs/architecture.md §6.3, 550 5.7.10).
 */
import type { Requirement } from './levels'
import { reject, safeText, type Verdict, CONTINUE } from './verdict'

/** What the MTA tells us of the inbound link (milter macros / Haraka connection.tls). */
export interface TlsFacts {
  /** e.g. "TLSv1.3"; absent on a plaintext session. */
  version?: string
  /** OpenSSL cipher name, e.g. "TLS_AES_256_GCM_SHA384". */
  cipher?: string
  cipherBits?: number
  /** Client certificate subject/issuer CN (only when the MTA verified it). */
  certSubject?: string
  certIssuer?: string
}

export function isTls(f: TlsFacts): boolean {
  return Boolean(f.version || f.cipher)
}

/** RFC 2045 value: a token, or a quoted string. */
function arValue(raw: string): string {
  const v = safeText(raw)
  return /^[A-Za-z0-9!#$%&'*+\-.^_`{|}~/]+$/.test(v) ? v : `"${v.replace(/["\\]/g, '\\$&')}"`
}

/**
 * The value of our own Authentication-Results field for the link, in the
 * form authentication_milter's TLS handler writes:
 *   mx.example.net; x-tls=pass smtp.version=TLSv1.3 smtp.cipher=... smtp.bits=256
 */
export function tlsAuthResults(authservId: string, f: TlsFacts): string {
  if (!isTls(f)) return `${authservId}; x-tls=none`
  const props = [`x-tls=pass`]
  if (f.version) props.push(`smtp.version=${arValue(f.version)}`)
  if (f.cipher) props.push(`smtp.cipher=${arValue(f.cipher)}`)
  if (f.cipherBits !== undefined) props.push(`smtp.bits=${f.cipherBits}`)
  if (f.certSubject) props.push(`smtp.client-cert-subject=${arValue(f.certSubject)}`)
  if (f.certIssuer) props.push(`smtp.client-cert-issuer=${arValue(f.certIssuer)}`)
  return `${authservId}; ${props.join(' ')}`
}

/** A tagged message must have arrived over TLS; TLS-Required: No exempts it. */
export function checkInboundLink(req: Requirement, f: TlsFacts): Verdict {
  if (req.level === 0 || req.tlsOptional || isTls(f)) return CONTINUE
  const what = req.source === 'requiretls' ? 'REQUIRETLS' : `Link-Security-Required: ${req.level}`
  return reject(
    550,
    '5.7.10',
    `this message is tagged ${what} but was sent over a connection without TLS; resend it over STARTTLS`,
    'tagged_plaintext',
  )
}

/**
 * Authentication-Results fields to remove: those claiming our authserv-id
 * (RFC 8601 §5), so nobody can forge our verdicts. Returns 1-based indexes
 * per header name, as the milter CHGHEADER action wants them.
 */
export function forgedAuthResults(authservId: string, values: readonly string[]): number[] {
  const ours = normalId(authservId)
  const out: number[] = []
  values.forEach((v, i) => {
    const id = authservIdOf(v)
    // A field we cannot read but that names our id is treated as a claim: a lenient reader may accept it.
    if (id === undefined ? mentions(v, ours) : normalId(id) === ours) out.push(i + 1)
  })
  return out
}

/** Case-insensitive, a trailing dot ignored (an absolute domain name is the same host). */
function normalId(id: string): string {
  return id.toLowerCase().replace(/\.$/, '')
}

function mentions(v: string, ours: string): boolean {
  return ours !== '' && v.toLowerCase().includes(ours)
}

/** RFC 2045 §5.1 tspecials, which end a token. */
const TSPECIALS = new Set(Array.from('()<>@,;:\\"/[]?='))

/**
 * The authserv-id of an Authentication-Results value (RFC 8601 §2.2):
 * `[CFWS] authserv-id` where authserv-id is an RFC 2045 value (token or
 * quoted-string) and CFWS may hold nested comments with quoted-pairs
 * (RFC 5322 §3.2.2). Undefined when the value does not start that way.
 */
export function authservIdOf(value: string): string | undefined {
  let i = 0
  const n = value.length
  for (;;) {
    while (i < n && /[ \t\r\n]/.test(value[i]!)) i++
    if (value[i] !== '(') break
    let depth = 0
    for (; i < n; i++) {
      const c = value[i]
      if (c === '\\') i++
      else if (c === '(') depth++
      else if (c === ')' && --depth === 0) break
    }
    if (i >= n) return undefined
    i++
  }
  if (value[i] === '"') {
    let id = ''
    for (i++; i < n && value[i] !== '"'; i++) {
      if (value[i] === '\\') i++
      if (i < n) id += value.charAt(i)
    }
    return i < n ? id : undefined
  }
  let id = ''
  for (; i < n; i++) {
    const c = value[i]!
    if (c <= ' ' || c === '\x7f' || TSPECIALS.has(c)) break
    id += c
  }
  return id === '' ? undefined : id
}
