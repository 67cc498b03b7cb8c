/**
 * One delivery attempt to one host with nodemailer's SMTP client
 * (smtp-connection): connect to an address linksec resolved (never a name,
 * so nodemailer does no DNS of its own), STARTTLS whenever offered, then
 * the no-downgrade rule of core/enforce/hop.ts decides from what the session
 * showed (TLS, certificate, the hop's `LINKSEC N` and REQUIRETLS after
 * STARTTLS) before MAIL FROM; REQUIRETLS is passed on when the rule says so.
 */
import * as fs from 'node:fs'
import type * as tls from 'node:tls'
import SMTPConnection from 'nodemailer/lib/smtp-connection'
import { decideHop, FULL_ENFORCEMENT, type HopVerdict, type PeerPolicy } from '../enforce/hop'
import { mxMatches } from '../policy/mta-sts-parse'
import { findEhloDeclaration, type Requirement } from '../levels'

export interface Target {
  /** The host name (SNI, certificate name, the hop as named in a line). */
  name: string
  ip: string
  port: number
  auth?: { user: string; pass: string }
}

export interface AttemptOptions {
  from: string
  recipients: string[]
  message: Buffer
  requirement: Requirement
  policy: PeerPolicy & { mxPatterns?: string[] }
  /** EHLO name. */
  hostname: string
  caFile?: string
  timeoutMs: number
}

export interface RcptResult {
  rcpt: string
  ok: boolean
  code?: number
  text: string
}

export type Attempt =
  | { kind: 'sent'; hop: string; tls?: string; requireTls: boolean; results: RcptResult[] }
  | { kind: 'refused'; hop: string; verdict: Extract<HopVerdict, { action: 'bounce' | 'retry' }> }
  | { kind: 'failed'; hop: string; temporary: boolean; code?: number; text: string }

export const hopName = (t: Target) =>
  `${t.name} [${t.ip}]:${t.port}`.replace(`${t.ip} [${t.ip}]`, `[${t.ip}]`)

type NodemailerError = Error & { code?: string; responseCode?: number; response?: string; recipient?: string }

/** nodemailer keeps the EHLO lines of the current session (after STARTTLS) here; it exposes them only after DATA. */
const ehloLinesOf = (c: SMTPConnection) => (c as unknown as { _ehloLines?: string[] })._ehloLines ?? []

export async function attempt(t: Target, o: AttemptOptions): Promise<Attempt> {
  const hop = hopName(t)
  const conn = new SMTPConnection({
    host: t.ip,
    port: t.port,
    servername: t.name,
    name: o.hostname,
    connectionTimeout: o.timeoutMs,
    greetingTimeout: o.timeoutMs,
    socketTimeout: o.timeoutMs,
    // The certificate is judged by the hop rule below (a self-signed one is fine below level 4).
    tls: {
      rejectUnauthorized: false,
      servername: t.name,
      ...(o.caFile ? { ca: fs.readFileSync(o.caFile) } : {}),
    },
  })
  const failed = (e: NodemailerError, temporary?: boolean): Attempt => ({
    kind: 'failed',
    hop,
    temporary: temporary ?? !(e.responseCode && e.responseCode >= 500),
    code: e.responseCode,
    text: (e.response ?? e.message).replace(/\s+/g, ' ').trim(),
  })
  // nodemailer reports a failed connection as an 'error' event, not through connect's callback.
  let onError: (e: Error) => void = () => {}
  conn.on('error', (e: Error) => onError(e))
  try {
    await new Promise<void>((resolve, reject) => {
      onError = reject
      conn.connect((e) => (e ? reject(e) : resolve()))
    })
  } catch (e) {
    conn.close()
    return failed(e as NodemailerError, true)
  }
  try {
    const socket = conn._socket as tls.TLSSocket | false | null
    const underTls = conn.secure && !!socket
    const lines = ehloLinesOf(conn)
    const decl = findEhloDeclaration(lines)
    const verdict = decideHop(
      o.requirement,
      {
        hop,
        tls: underTls,
        // nodemailer upgrades whenever STARTTLS is offered, so plaintext here means it was not.
        offersStartTls: underTls,
        certVerified: underTls && socket ? socket.authorized : false,
        certError: underTls && socket && !socket.authorized ? String(socket.authorizationError) : undefined,
        peerEhloDeclaration: decl?.ok ? decl.value.level : undefined,
        offersRequireTls: underTls && lines.some((l) => /^REQUIRETLS\b/i.test(l)),
        mxMatchesPolicy: mxMatches(t.name, o.policy.mxPatterns ?? []),
      },
      o.policy,
      FULL_ENFORCEMENT,
    )
    if (verdict.action !== 'deliver') {
      conn.quit()
      return { kind: 'refused', hop, verdict }
    }
    if (t.auth) {
      const auth = t.auth
      await new Promise<void>((resolve, reject) => {
        onError = reject
        conn.login({ user: auth.user, pass: auth.pass }, (e) => (e ? reject(e) : resolve()))
      })
    }
    const info = await new Promise<import('nodemailer/lib/smtp-connection').SMTPConnectionSendInfo>(
      (resolve, reject) => {
        onError = reject
        // A connection closed mid-transaction ends with 'end', not 'error'.
        conn.once('end', () =>
          reject(Object.assign(new Error('the connection closed before the message was accepted'), {})),
        )
        conn.send(
          {
            from: o.from,
            to: o.recipients,
            size: o.message.length,
            requireTLSExtensionEnabled: verdict.passRequireTls,
          },
          o.message,
          (e, i) => (e ? reject(e) : resolve(i)),
        )
      },
    )
    conn.quit()
    const rejected = new Map((info.rejectedErrors ?? []).map((e: NodemailerError) => [e.recipient, e]))
    const results = o.recipients.map((rcpt): RcptResult => {
      const e = rejected.get(rcpt)
      if (e || info.rejected.includes(rcpt))
        return { rcpt, ok: false, code: e?.responseCode, text: (e?.response ?? 'rejected').trim() }
      return { rcpt, ok: true, text: info.response.trim() }
    })
    return {
      kind: 'sent',
      hop,
      tls: underTls && socket ? (socket.getProtocol() ?? 'TLS') : undefined,
      requireTls: verdict.passRequireTls,
      results,
    }
  } catch (e) {
    conn.close()
    // Every RCPT refused: each recipient keeps its own reply (a 450 for one, a 550 for another).
    const ne = e as NodemailerError & { rejectedErrors?: NodemailerError[] }
    const each = new Map((ne.rejectedErrors ?? []).map((x) => [x.recipient, x]))
    if (ne.code === 'EENVELOPE' && o.recipients.every((r) => each.has(r))) {
      const socket = conn._socket as tls.TLSSocket | false | null
      return {
        kind: 'sent',
        hop,
        tls: conn.secure && socket ? (socket.getProtocol() ?? 'TLS') : undefined,
        requireTls: false,
        results: o.recipients.map((rcpt) => {
          const x = each.get(rcpt)!
          return { rcpt, ok: false, code: x.responseCode, text: (x.response ?? x.message).trim() }
        }),
      }
    }
    return failed(ne)
  }
}
