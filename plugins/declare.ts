/**
 * The declaring duty (docs/architecture.md §6.1): `LINKSEC <N> ttl=<s>` on every EHLO of a
 * session that can be secured (STARTTLS offered, or already under TLS), RFC
 * 8689 REQUIRETLS on TLS sessions of a server that refuses downgrades, and
 * policing of `MAIL FROM:<…> REQUIRETLS` — Haraka accepts unknown MAIL
 * parameters, so without us a plaintext client could hand over a REQUIRETLS
 * message that nobody honours. What is declared is decided in core/own-level.ts.
 */
import type { LinksecConfig } from '../core/config'
import { formatEhloKeyword, type Level } from '../core/levels'
import { offersRequireTls as coreOffersRequireTls, ownLevel } from '../core/own-level'
import type { Runtime } from '../core/runtime'
import { reject, type Verdict } from '../core/verdict'
import type { Duty, DutyContext } from './duty'
import { CONT, type HarakaConnection, type Next } from './haraka'
import { linksecNotes } from './notes'
import { harakaReply } from './reply'

export const REQUIRETLS = 'REQUIRETLS'

/**
 * Whether this process runs the outbound no-downgrade duty. plugins/linksec.ts
 * turns it off when that duty is refused (an untested Haraka version): then
 * levels 3-4 and REQUIRETLS are not performed here, so they are not declared.
 */
let enforcementLoaded = true
export function setEnforcementLoaded(loaded: boolean): void {
  enforcementLoaded = loaded
}
const STARTTLS = 'STARTTLS'

/** The level this configuration performs where STARTTLS is available (never more than it enforces). */
export function declaredLevel(cfg: LinksecConfig): Level {
  return ownLevel(cfg, true, enforcementLoaded).level
}

/**
 * Can this session be secured? Haraka's tls plugin pushes STARTTLS into the
 * capabilities (only with a valid certificate, and not for its no_tls_hosts or
 * no_starttls_ports); our capabilities hook runs after it (priority below).
 */
export function sessionCanUseTls(conn: HarakaConnection): boolean {
  if (conn.tls?.enabled) return true
  return (conn.capabilities ?? []).some((c) => c.toUpperCase() === STARTTLS)
}

/** REQUIRETLS is ours to offer only under TLS and with the duty of refusing downgrades. */
export function offersRequireTls(cfg: LinksecConfig, conn: HarakaConnection): boolean {
  return coreOffersRequireTls(cfg, conn.tls?.enabled ?? false, enforcementLoaded)
}

/** The EHLO keywords linksec adds on this connection. */
export function ehloKeywords(cfg: LinksecConfig, conn: HarakaConnection): string[] {
  const out: string[] = []
  const own = ownLevel(cfg, sessionCanUseTls(conn), enforcementLoaded)
  if (cfg.declare.ehlo && own.declares) {
    out.push(formatEhloKeyword({ level: own.level, ttlSeconds: cfg.main.declaration_ttl }))
  }
  if (offersRequireTls(cfg, conn)) out.push(REQUIRETLS)
  return out
}

function onCapabilities({ rt }: DutyContext, next: Next, target: unknown): void {
  const conn = target as HarakaConnection
  if (conn.capabilities) conn.capabilities.push(...ehloKeywords(rt.config, conn))
  next()
}

/**
 * Why a MAIL FROM with REQUIRETLS cannot be taken, or undefined if it can.
 * Plaintext: 530 5.7.10 — RFC 3207's "530 Must issue a STARTTLS command
 * first" with RFC 5248's 5.7.10 "Encryption needed": it tells the client what
 * to do. (Postfix answers 555 5.5.4 because it never knows the option.) Under
 * TLS but not offered here: 555 5.5.4, RFC 5321's answer to a parameter the
 * server did not announce.
 */
export function checkRequireTlsParam(
  rt: Runtime,
  conn: HarakaConnection,
  value: unknown,
): Verdict | undefined {
  if (!conn.tls?.enabled) {
    return reject(
      530,
      '5.7.10',
      'REQUIRETLS needs a TLS session; issue STARTTLS first, then send MAIL FROM again',
      'requiretls_plaintext',
    )
  }
  if (!offersRequireTls(rt.config, conn)) {
    return reject(555, '5.5.4', 'REQUIRETLS is not offered by this server', 'requiretls_not_offered')
  }
  // RFC 8689 §3: the parameter takes no value.
  if (value !== null && value !== undefined) {
    return reject(501, '5.5.4', 'REQUIRETLS takes no value; send it as a bare keyword', 'requiretls_syntax')
  }
  return undefined
}

function onMail({ rt }: DutyContext, next: Next, target: unknown, params: unknown): void {
  const conn = target as HarakaConnection
  const mailParams = ((params as unknown[] | undefined)?.[1] ?? {}) as Record<string, unknown>
  if (!(REQUIRETLS in mailParams)) return next()
  const refusal = checkRequireTlsParam(rt, conn, mailParams[REQUIRETLS])
  if (refusal) {
    rt.log.info('MAIL FROM REQUIRETLS refused', { reason: refusal.reason, conn: conn.uuid })
    return next(...harakaReply(refusal))
  }
  if (conn.transaction) linksecNotes(conn.transaction).requiretls = true
  next(CONT)
}

export const declareDuty: Duty = {
  name: 'declare',
  hooks: {
    // After Haraka's tls plugin (priority 0) has offered STARTTLS or not.
    capabilities: { handler: onCapabilities, priority: 50 },
    // Early, so no other plugin accepts the transaction before we see the parameter.
    mail: { handler: onMail, priority: -50 },
  },
}
