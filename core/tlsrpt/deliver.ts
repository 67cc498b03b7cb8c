/**
 * Delivering one gzipped report to one `rua` URI (RFC 8460 §5):
 * - https: POST `application/tlsrpt+gzip` through linksec's HTTPS client
 *   (core/net/https.ts: resolved through our DNS, private addresses refused
 *   unless [net] allow_private_addresses, capped, no redirects); 2xx = sent.
 * - mailto: a `multipart/report; report-type="tlsrpt"` message (§5.3) with the
 *   report as `application/tlsrpt+gzip`, handed to the local MTA or relay
 *   ([tlsrpt] relay) over SMTP by nodemailer. It must arrive even when TLS
 *   fails (§5.3), so STARTTLS is used when offered and never required.
 */
import { randomBytes } from 'node:crypto'
import type { HttpsClient } from '../net/types'
import type { ReportUri } from './rua'
import { dayRange, type TlsReport } from './report'

export interface MailSettings {
  relayHost: string
  relayPort: number
  from: string
  /** The host name we send as (RFC 8460 TLS-Report-Submitter). */
  submitter: string
}

function fold(b64: string): string {
  return b64.replace(/.{1,76}/g, '$&\r\n')
}

/** RFC 8460 §5.3: sender!policy-domain!begin!end!unique-id.json.gz (times in seconds since the epoch). */
export function reportFileName(submitter: string, domain: string, report: TlsReport): string {
  const { start, end } = dayRange(report['date-range']['start-datetime'].slice(0, 10))
  const id = report['report-id'].replace(/[^A-Za-z0-9.-]/g, '_')
  return `${submitter}!${domain}!${start.getTime() / 1000}!${Math.floor(end.getTime() / 1000)}!${id}.json.gz`
}

export function reportMessage(
  m: MailSettings,
  to: string,
  domain: string,
  report: TlsReport,
  gz: Buffer,
): string {
  const boundary = `tlsrpt-${randomBytes(8).toString('hex')}`
  const id = report['report-id']
  return [
    `From: ${m.from}`,
    `To: ${to}`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    `Subject: Report Domain: ${domain} Submitter: ${m.submitter} Report-ID: <${id}>`,
    `Message-ID: <${randomBytes(12).toString('hex')}@${m.submitter}>`,
    `TLS-Report-Domain: ${domain}`,
    `TLS-Report-Submitter: ${m.submitter}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is an aggregate TLS report (RFC 8460) from ${m.submitter} for ${domain},`,
    `${report['date-range']['start-datetime']} to ${report['date-range']['end-datetime']}.`,
    '',
    `--${boundary}`,
    'Content-Type: application/tlsrpt+gzip',
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${reportFileName(m.submitter, domain, report)}"`,
    '',
    fold(gz.toString('base64')).trimEnd(),
    `--${boundary}--`,
    '',
  ].join('\r\n')
}

interface Transport {
  sendMail(m: { envelope: { from: string; to: string[] }; raw: string }): Promise<unknown>
  close(): void
}
type Nodemailer = { createTransport(o: Record<string, unknown>): Transport }

/** Hands one message to the relay (the local MTA) over SMTP; also used for Web Key Service mail (core/wks). */
export async function mail(m: MailSettings, to: string, raw: string, timeoutMs: number): Promise<void> {
  const nodemailer = require('nodemailer') as Nodemailer
  const transport = nodemailer.createTransport({
    host: m.relayHost,
    port: m.relayPort,
    secure: false,
    name: m.submitter,
    // Opportunistic: a report about TLS failures must get through them (RFC 8460 §5.3).
    tls: { rejectUnauthorized: false },
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  })
  try {
    await transport.sendMail({ envelope: { from: m.from, to: [to] }, raw })
  } finally {
    transport.close()
  }
}

export interface DeliveryContext {
  https: HttpsClient
  mail: MailSettings
  timeoutMs: number
}

/** Delivers one report to one URI; throws with a sentence when it was not accepted. */
export async function deliverReport(
  ctx: DeliveryContext,
  uri: ReportUri,
  domain: string,
  report: TlsReport,
  gz: Buffer,
): Promise<void> {
  if (uri.kind === 'mailto')
    return mail(
      ctx.mail,
      uri.address,
      reportMessage(ctx.mail, uri.address, domain, report, gz),
      ctx.timeoutMs,
    )
  const res = await ctx.https.get(uri.uri, {
    method: 'POST',
    body: gz,
    headers: { 'content-type': 'application/tlsrpt+gzip' },
    maxBytes: 64 * 1024,
  })
  if (res.status < 200 || res.status > 299) throw new Error(`${uri.uri} answered HTTP ${res.status}`)
}
