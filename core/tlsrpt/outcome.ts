/**
 * One outbound SMTP session's TLS outcome in RFC 8460 terms (§4.3 result
 * types), from the facts the enforcement saw on the link. A session that never
 * reached EHLO says nothing about TLS and is not counted.
 */
import type { ReportPolicy } from './policy'

export type ResultType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid'
  | 'dane-required'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid'

export interface SessionFacts {
  sawEhlo: boolean
  tls: boolean
  offersStartTls: boolean
  certVerified: boolean
  certError?: string
  tlsError?: string
  /**
   * The chain verified but the peer's name was never checked (Postfix's
   * "Trusted" at a level below verify): under a policy that needs the name
   * (MTA-STS, RFC 8461 §4.1) the session's result is unknown, so not counted.
   */
  nameUnchecked?: boolean
}

export interface SessionOutcome {
  policy: ReportPolicy
  result: 'success' | ResultType
  receivingMxHostname: string
  receivingIp?: string
  sendingMtaIp?: string
  /** Free text for failure-reason-code (RFC 8460 §4.4), e.g. the TLS library's error. */
  failureReasonCode?: string
  /** When it happened (ms since epoch): the report day. */
  at: number
}

/** Node/OpenSSL certificate errors (X509_V_ERR_* reasons) -> RFC 8460 result types. */
export function certificateResult(err: string | undefined): ResultType {
  // Node's codes (DEPTH_ZERO_SELF_SIGNED_CERT, ERR_TLS_CERT_ALTNAME_INVALID) and OpenSSL's sentences alike.
  const e = (err ?? '').toLowerCase().replace(/_/g, ' ')
  if (/expired|not yet valid/.test(e)) return 'certificate-expired'
  if (/altname|hostname|host name|does not match|mismatch/.test(e)) return 'certificate-host-mismatch'
  if (/self[- ]signed|issuer|untrusted|not trusted|unable to verify|unable to get|chain/.test(e))
    return 'certificate-not-trusted'
  return 'validation-failure'
}

/**
 * The session's result: success when TLS was negotiated and, under a policy
 * that authenticates the peer (MTA-STS, DANE — in `mode: testing` too,
 * RFC 8461 §5, though nothing is enforced there), its certificate verified;
 * undefined when the session ended before anything about TLS was known.
 */
export function sessionResult(
  f: SessionFacts,
  policyType: ReportPolicy['policyType'],
): SessionOutcome['result'] | undefined {
  if (f.tls) {
    if (policyType === 'no-policy-found' || f.certVerified) return 'success'
    if (f.nameUnchecked && !f.certError) return undefined
    return certificateResult(f.certError)
  }
  if (f.tlsError) return 'validation-failure'
  if (f.sawEhlo && !f.offersStartTls) return 'starttls-not-supported'
  return undefined
}
