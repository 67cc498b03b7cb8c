/**
 * The bounce a sender gets when a tagged message could not leave securely:
 * a delivery status notification (RFC 3464 `multipart/report`,
 * report-type=delivery-status, RFC 6522) a person can read and a program
 * can parse. Pure: the adapter hands in the facts (who sent what to whom,
 * which hops were tried and why each was refused, what this server could
 * have done instead), this returns the whole message. Three parts:
 *   1. text/plain: which message, which recipients, which hop and why, the
 *      rule that applied, what the sender can do;
 *   2. message/delivery-status: Reporting-MTA, and per recipient Action,
 *      `Status: 5.7.10` (RFC 3463, "encryption needed" in the RFC 5248
 *      registry), Remote-MTA, Diagnostic-Code;
 *   3. text/rfc822-headers: the headers of the undelivered message, never
 *      its body (a body that needed a secure link must not come back over
 *      an insecure one; RFC 8689 §5 returns headers only too).
 */
import type { Level, Requirement } from '../levels'
import { FALLBACK_HEADER, REQUIREMENT_HEADER } from '../levels'
import { parseHeaders, headerValue } from '../mime'
import { describeRequirement, type Enforcement, type HopRefusal } from './hop'

/** One hop that was tried and refused, with what the session showed. */
export interface DsnHop {
  /** As LinkFacts.hop: "mx.example.net [192.0.2.1]:25". */
  hop: string
  /** The hop's host name for Remote-MTA (`dns; name`), when it has one. */
  mta?: string
  reason: HopRefusal
  /** The level the hop declared and where that came from (EHLO, txt, static, learned …). */
  declared?: { level?: Level; source: string }
  /** The TLS or certificate error, as the TLS library said it. */
  error?: string
  /** The refusal was a retry that ran out of time (handshake or certificate failures). */
  retried?: boolean
}

/**
 * What this server could have delivered instead: `no_marked_part` when
 * `[enforce] fallback = deliver_safe_part` but the message has no part
 * marked `Link-Security-Fallback: yes`; `off` when the fallback is not enabled.
 */
export type FallbackAvailability = 'no_marked_part' | 'off'

export interface DsnFacts {
  /** This server's name (Haraka `config/me`): Reporting-MTA and the postmaster's domain. */
  reportingMta: string
  /** The envelope sender the DSN goes to. */
  sender: string
  /** The recipients that were not delivered. */
  recipients: readonly string[]
  /** Their domain (the destination the hops served). */
  domain: string
  requirement: Requirement
  enforcement: Enforcement
  /** The hops in the order they were tried; at least one. */
  hops: readonly DsnHop[]
  fallback: FallbackAvailability
  /** The header block of the undelivered message (CRLF or LF line ends). */
  originalHeaders: string
  /** When the message entered the queue. */
  arrivalDate?: Date
  /** Now. */
  date: Date
  /** A unique token (e.g. a UUID): the DSN's Message-ID and MIME boundary are made from it. */
  id: string
  /** The destination's policy (MTA-STS, DANE, static list) required TLS; for untagged mail this is the rule. */
  policyRequiresTls?: boolean
}

export interface Dsn {
  from: string
  to: string
  subject: string
  /** The text of the human-readable part (LF line ends). */
  humanText: string
  /** The per-recipient Diagnostic-Code text (after `X-Linksec; `). */
  diagnostic: string
  /** The whole message, CRLF line ends, ready for SMTP (not dot-stuffed). */
  message: string
}

const WIDTH = 76

/** What a declaration source is called in a sentence. */
const SOURCE_WORDS: Record<string, string> = {
  EHLO: 'in its EHLO reply',
  txt: 'in its _linksec DNS record',
  static: "in this server's list of known domains",
  learned: 'in an earlier EHLO reply',
  mta_sts: 'through MTA-STS',
  dane: 'through DANE',
}

function requirementWords(req: Requirement): string {
  return req.source === 'requiretls'
    ? 'REQUIRETLS (RFC 8689)'
    : `link-security level ${req.level} (${REQUIREMENT_HEADER}: ${req.level})`
}

/** The rule that applied to this message, as one paragraph. */
function ruleText(
  req: Requirement,
  enforcement: Enforcement,
  domain: string,
  policyRequiresTls = false,
): string {
  if (req.source === 'requiretls') {
    const more =
      req.level > 3 && enforcement.peerLevel ? `, and declare link-security level ${req.level}` : ''
    return (
      'Your message was sent with REQUIRETLS (RFC 8689): it may leave this server only over an ' +
      'encrypted connection (TLS), to a server whose certificate verifies and which supports ' +
      `REQUIRETLS or declares link-security level 3 or more${more}.`
    )
  }
  if (req.level === 0 || !enforcement.noDowngrade)
    return policyRequiresTls
      ? `${domain} publishes a policy that requires an encrypted connection (TLS) for all mail it receives, so this server never sends mail there without it.`
      : `This server does not send mail to ${domain} without an encrypted connection (TLS).`
  const peer = enforcement.peerLevel
    ? ` to a server that declares link-security level ${req.level} or more`
    : ''
  const cert = req.level >= 4 || req.verifiedCertificate ? ', whose certificate verifies' : ''
  return (
    `Your message asks for ${requirementWords(req)}: it may leave this server only over an ` +
    `encrypted connection (TLS)${peer}${cert}.`
  )
}

function declaredWords(d: DsnHop['declared']): string {
  if (!d || d.level === undefined) return ''
  return SOURCE_WORDS[d.source] ?? `(${d.source})`
}

/** Why one hop was refused, as a sentence about that hop. */
function hopReasonText(h: DsnHop, req: Requirement, domain: string): string {
  const err = h.error ? ` (${h.error})` : ''
  const again = h.retried ? '; this server kept trying until its retry time ran out' : ''
  switch (h.reason) {
    case 'no_starttls':
      return `${h.hop} does not offer an encrypted connection (STARTTLS).`
    case 'tls_failed':
      return `the encrypted connection (TLS handshake) with ${h.hop} failed${err}${again}.`
    case 'cert_unverified':
      return `the certificate of ${h.hop} could not be verified${err}${again}.`
    case 'mx_not_in_policy':
      return `${h.hop} is not one of the mail servers named in the published policy of ${domain}${again}.`
    case 'peer_level_low':
      return (
        `${h.hop} declares link-security level ${h.declared?.level} ${declaredWords(h.declared)}, ` +
        `below the level ${req.level} your message requires.`
      )
    case 'peer_level_unknown':
      return `${h.hop} declares no link-security level; your message requires level ${req.level} or more.`
    case 'no_requiretls':
      return `${h.hop} supports neither REQUIRETLS nor link-security level 3 or more, so it cannot promise to keep your message encrypted on its way.`
  }
}

/** What the recipient's administrator could change, for the reasons seen. */
function recipientAdvice(hops: readonly DsnHop[], req: Requirement, domain: string): string {
  const kinds = new Set(hops.map((h) => h.reason))
  const asks: string[] = []
  if (kinds.has('no_starttls') || kinds.has('tls_failed')) asks.push('offer encryption (STARTTLS) that works')
  if (kinds.has('cert_unverified') || kinds.has('mx_not_in_policy'))
    asks.push('use a certificate that verifies for the name of each mail server')
  if (kinds.has('peer_level_low') || kinds.has('peer_level_unknown'))
    asks.push(
      `publish the link-security level their servers perform (a DNS TXT record at _linksec.${domain} such as "v=LINKSEC1; level=${req.level}", or a LINKSEC declaration in EHLO)`,
    )
  if (kinds.has('no_requiretls')) asks.push('support REQUIRETLS (RFC 8689) or declare link-security level 3')
  return `Ask the administrator of ${domain} to ${asks.join(', and to ')}.`
}

function senderAdvice(f: DsnFacts): string[] {
  const req = f.requirement
  const out: string[] = []
  if (req.source === 'requiretls')
    out.push(
      'If the message may travel without this protection, send it again without REQUIRETLS (an option of your mail program).',
    )
  else if (req.level > 0)
    out.push(
      `If the message may travel without this protection, send it again without the "${REQUIREMENT_HEADER}: ${req.level}" header.`,
    )
  else
    out.push(
      'If the message may travel without encryption, send it again with the header "TLS-Required: No" (RFC 8689).',
    )
  if (req.level > 0 || req.source === 'requiretls')
    out.push(
      f.fallback === 'no_marked_part'
        ? `Or mark the part the recipient may read anyway with a "${FALLBACK_HEADER}: yes" header (one part of a multipart message): when the whole message cannot go out securely, this server delivers that part alone.`
        : `This server does not deliver a part marked "${FALLBACK_HEADER}: yes" on its own; its postmaster can enable that (linksec: [enforce] fallback = deliver_safe_part).`,
    )
  out.push(recipientAdvice(f.hops, req, f.domain))
  return out
}

/** Wraps one paragraph at WIDTH columns; `indent` starts continuation lines. */
function wrap(text: string, first = '', indent = ''): string[] {
  const words = text.split(/\s+/).filter(Boolean)
  const lines: string[] = []
  let line = first
  for (const w of words) {
    const prefix = lines.length === 0 ? first : indent
    if (line.length > prefix.length && line.length + 1 + w.length > WIDTH) {
      lines.push(line)
      line = indent + w
    } else line = line.length > prefix.length ? `${line} ${w}` : line + w
  }
  lines.push(line)
  return lines
}

/** Printable ASCII only, one line: what comes from the message or the peer cannot break the DSN. */
function oneLine(s: string | undefined): string {
  return (s ?? '')
    .replace(/[\r\n\t]+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .trim()
}

function headerBlock(raw: string): string {
  const text = raw.replace(/\r?\n/g, '\r\n')
  const end = text.indexOf('\r\n\r\n')
  return (end >= 0 ? text.slice(0, end) : text).replace(/(\r\n)*$/, '')
}

function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000')
}

/** Builds the DSN for a tagged message no hop could take securely. */
export function buildDsn(f: DsnFacts): Dsn {
  if (f.hops.length === 0) throw new Error('buildDsn needs at least one refused hop')
  const original = headerBlock(f.originalHeaders)
  const fields = parseHeaders(original + '\r\n')
  const subject = oneLine(headerValue(fields, 'Subject'))
  const messageId = oneLine(headerValue(fields, 'Message-ID'))
  const sentDate = oneLine(headerValue(fields, 'Date'))
  const from = `Mail Delivery System <postmaster@${f.reportingMta}>`
  const to = `<${oneLine(f.sender)}>`
  const dsnSubject = subject
    ? `Undelivered: ${subject}`
    : `Undelivered: your message to ${f.recipients.map(oneLine).join(', ')}`
  const last = f.hops[f.hops.length - 1]!
  const req = f.requirement
  const reasons = f.hops.map((h) =>
    hopReasonText({ ...h, error: oneLine(h.error) || undefined }, req, f.domain),
  )
  const diagnostic = oneLine(
    `${describeRequirementForDiagnostic(req)} not sent: ${reasons[reasons.length - 1]!.replace(/\.$/, '')}`,
  )

  const row = (label: string, value: string) => `  ${label.padEnd(13)}${value}`
  const human: string[] = [
    ...wrap(
      `This is the mail server ${f.reportingMta}. Your message could not be delivered: no mail server of the recipient could take it over a connection as secure as required (see below), and it was not sent over a weaker one.`,
    ),
    '',
    row('Subject:', subject || '(none)'),
    ...(messageId ? [row('Message-ID:', messageId)] : []),
    ...(sentDate ? [row('Sent:', sentDate)] : []),
    ...f.recipients.map((r, i) => row(i === 0 ? 'To:' : '', oneLine(r))),
    '',
    ...wrap(ruleText(req, f.enforcement, f.domain, f.policyRequiresTls)),
    '',
    f.hops.length === 1 ? 'What happened:' : `What happened (${f.hops.length} mail servers were tried):`,
    ...reasons.flatMap((r) => wrap(r, '  - ', '    ')),
    '',
    'What you can do:',
    ...senderAdvice(f).flatMap((a) => wrap(a, '  - ', '    ')),
    '',
    ...wrap(
      'The technical report (status 5.7.10, "encryption needed") and the headers of your message are attached.',
    ),
  ]
  const humanText = human.join('\n') + '\n'

  const status: string[] = [
    `Reporting-MTA: dns; ${f.reportingMta}`,
    ...(f.arrivalDate ? [`Arrival-Date: ${rfc5322Date(f.arrivalDate)}`] : []),
  ]
  for (const r of f.recipients) {
    status.push(
      '',
      `Final-Recipient: rfc822; ${oneLine(r)}`,
      'Action: failed',
      'Status: 5.7.10',
      ...(last.mta ? [`Remote-MTA: dns; ${oneLine(last.mta)}`] : []),
      ...wrapField('Diagnostic-Code', `X-Linksec; ${diagnostic}`),
      `Last-Attempt-Date: ${rfc5322Date(f.date)}`,
      `X-Linksec-Reason: ${last.reason}`,
    )
  }

  const boundary = `linksec-dsn-${f.id.replace(/[^A-Za-z0-9]/g, '')}`
  const head = [
    `From: ${from}`,
    `To: ${to}`,
    ...wrapField('Subject', dsnSubject),
    `Date: ${rfc5322Date(f.date)}`,
    `Message-ID: <${f.id}@${f.reportingMta}>`,
    ...(messageId ? [`In-Reply-To: ${messageId}`, `References: ${messageId}`] : []),
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;`,
    `    boundary="${boundary}"`,
  ]
  const body = [
    'This is a delivery status notification (RFC 3464) in MIME format.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Description: Notification',
    '',
    ...humanText.replace(/\n$/, '').split('\n'),
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    'Content-Description: Delivery report',
    '',
    ...status,
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    'Content-Description: Undelivered message headers',
    '',
    ...original.split('\r\n'),
    '',
    `--${boundary}--`,
    '',
  ]
  const message = [...head, '', ...body].join('\r\n')
  return { from, to, subject: dsnSubject, humanText, diagnostic, message }
}

function describeRequirementForDiagnostic(req: Requirement): string {
  return req.level > 0 || req.source === 'requiretls' ? `message (${describeRequirement(req)})` : 'message'
}

/** A header field folded at WIDTH columns on blanks (RFC 5322 §2.2.3). */
function wrapField(name: string, value: string): string[] {
  return wrap(value, `${name}: `, '    ')
}
