/**
 * Postfix smtp_tls_policy_maps over socketmap: the request `<name> <key>`
 * and the reply for a DomainPolicy (socketmap_table(5), postconf(5)
 * smtp_tls_policy_maps, postconf(5) and socketmap_table(5)):
 *
 *   dane-only                  OK dane-only
 *   secure (MTA-STS, static)   OK secure match=mx.example.com:.example.net servername=hostname
 *   encrypt (a linksec level)  OK encrypt
 *   nothing known              NOTFOUND          (Postfix keeps its own default level)
 *   a lookup failed that could have made the mode stricter, nothing valid cached
 *                              TEMP <reason>     (Postfix defers the mail: never a silent downgrade)
 *   a map name we do not serve PERM <reason>     (a configuration mistake, visible in Postfix's log)
 *
 * MTA-STS `*.example.com` becomes Postfix `.example.com`, as
 * postfix-mta-sts-resolver does; Postfix's form also matches deeper labels,
 * which is the closest `match=` can express.
 *
 * With `[socketmap] tlsrpt=true` an MTA-STS answer also carries the attributes
 * Postfix 3.10+ uses for its own TLS reports (RFC 8460) and for
 * smtp_tls_enforce_sts_mx_patterns (postconf(5) smtp_tls_policy_maps):
 *   policy_type=sts policy_domain=D policy_ttl=S mx_host_pattern=P …
 *   { policy_string = version: STSv1 } { policy_string = mode: enforce } …
 * Postfix before 3.10 rejects unknown attributes, so they are off by default.
 */
import type { DomainPolicy } from '../../core/policy'
import { isTesting, reportPolicyOf } from '../../core/tlsrpt/policy'
import { NetstringError } from './netstring'

export type SocketmapReply =
  | { status: 'OK'; data: string }
  | { status: 'NOTFOUND' }
  | { status: 'TEMP' | 'TIMEOUT' | 'PERM'; reason: string }

export interface SocketmapRequest {
  name: string
  key: string
}

/** `name SP key`; names and keys are printable ASCII (Postfix folds keys to lower case). */
export function parseRequest(payload: Buffer): SocketmapRequest {
  const text = payload.toString('latin1')
  const sp = text.indexOf(' ')
  if (sp <= 0) throw new NetstringError('socketmap request is not "<name> <key>"')
  const name = text.slice(0, sp)
  const key = text.slice(sp + 1)
  if (!/^[\x21-\x7e]+$/.test(name) || !/^[\x21-\x7e]+$/.test(key))
    throw new NetstringError('socketmap request has an empty or non-printable name or key')
  return { name, key }
}

export function formatReply(r: SocketmapReply): string {
  switch (r.status) {
    case 'OK':
      return `OK ${r.data}`
    case 'NOTFOUND':
      return 'NOTFOUND '
    default:
      return `${r.status} ${cleanReason(r.reason)}`
  }
}

/** One line of printable ASCII, short enough for Postfix's log. */
function cleanReason(s: string): string {
  return s.replace(/[^\x20-\x7e]+/g, ' ').slice(0, 400)
}

/** Postfix `match=` form of a pattern: `*.x` -> `.x`; host names and `.x` stay. */
export function postfixMatchPattern(p: string): string {
  return p.startsWith('*.') ? p.slice(1) : p
}

/** The smtp_tls_policy_maps value for a policy, or undefined when Postfix should use its default. */
function tlsPolicyValue(p: DomainPolicy): string | undefined {
  switch (p.tlsMode) {
    case 'dane-only':
      return 'dane-only'
    case 'secure':
    case 'verify': {
      const match = [...new Set(p.mxPatterns.map(postfixMatchPattern))].join(':')
      // RFC 8461 §4.1: SNI is the MX host name, and the certificate must match it.
      return match ? `${p.tlsMode} match=${match} servername=hostname` : `${p.tlsMode} servername=hostname`
    }
    case 'encrypt':
      return 'encrypt'
    default:
      return undefined
  }
}

/** Postfix's `{ name = value }` form keeps a value with blanks in one attribute; braces cannot be quoted. */
function attribute(name: string, value: string): string | undefined {
  if (/[{}\x00-\x1f\x7f-\uffff]/.test(value)) return undefined
  return /\s/.test(value) ? `{ ${name} = ${value} }` : `${name}=${value}`
}

/** Postfix 3.10+ TLSRPT attributes for an MTA-STS policy; empty for any other. */
export function tlsrptAttributes(p: DomainPolicy): string {
  const r = reportPolicyOf(p)
  // A policy that could not be fetched has no strings to hand over: Postfix gets none of it.
  if (r.policyType !== 'sts' || r.failure) return ''
  // A testing-mode policy is linksec's to report (core/tlsrpt), not Postfix's to act on: the
  // reply stays what it was without [socketmap] tlsrpt (docs/operators.md, TLS reports).
  if (isTesting(r)) return ''
  const attrs = [
    attribute('policy_type', 'sts'),
    attribute('policy_domain', r.policyDomain),
    r.ttlSeconds === undefined ? undefined : attribute('policy_ttl', String(r.ttlSeconds)),
    ...r.mxHostPatterns.map((m) => attribute('mx_host_pattern', m)),
    ...r.policyStrings.map((l) => attribute('policy_string', l)),
  ]
  return attrs.filter((a): a is string => a !== undefined).join(' ')
}

export function policyReply(p: DomainPolicy, opts: { tlsrpt?: boolean } = {}): SocketmapReply {
  if (p.tlsModeUncertain) {
    const failed = p.sources.filter((s) => s.outcome === 'error').map((s) => `${s.source}: ${s.reason}`)
    return { status: 'TEMP', reason: `policy lookup for ${p.domain} failed (${failed.join('; ')})` }
  }
  const value = tlsPolicyValue(p)
  if (!value) return { status: 'NOTFOUND' }
  const extra = opts.tlsrpt ? tlsrptAttributes(p) : ''
  return { status: 'OK', data: extra ? `${value} ${extra}` : value }
}
