/**
 * The small part of Haraka's plugin API that linksec uses, typed. Haraka 3.x
 * is plain JavaScript without types; these shapes were read from its
 * plugins.js, connection.js and transaction.js (docs/architecture.md §5.2). Keep them
 * minimal: a field appears here only when a duty reads it.
 */
/** haraka-constants is CommonJS without types; these are the codes we use. */
const constants = require('haraka-constants') as Record<'cont' | 'ok' | 'deny' | 'denysoft', number>

/** Return codes for `next()` (haraka-constants). */
export const CONT: number = constants.cont
export const OK: number = constants.ok
export const DENY: number = constants.deny
export const DENYSOFT: number = constants.denysoft

/** A hook's callback: `next()` continues, `next(DENY, msg)` refuses. */
export type Next = (code?: number, msg?: unknown) => void

/** Node's TLSSocket.getCipher(), as Haraka stores it in connection.tls.cipher. */
export interface HarakaCipher {
  name?: string
  standardName?: string
  version?: string
}

export interface HarakaTls {
  enabled: boolean
  advertised?: boolean
  /** The client certificate verified (rare on port 25). */
  verified?: boolean
  cipher?: HarakaCipher
  peerCertificate?: { subject?: { CN?: string }; issuer?: { CN?: string } }
}

/** haraka-email-message's Header: get_all() gives unfolded values in order. */
export interface HarakaHeader {
  get_all(name: string): readonly string[]
  /** Raw lines "Name: value\n" in message order (shared with message_stream). */
  header_list: string[]
  headers: Record<string, string[]>
  headers_decoded: Record<string, string[]>
}

export interface HarakaTransaction {
  uuid: string
  /** haraka-notes; written to the queue file as JSON (hmail.todo.notes outbound). */
  notes: Record<string, unknown>
  header: HarakaHeader
  mail_from?: { host?: string | null; format?(): string }
  /** Haraka's Address objects (address-rfc2821). */
  rcpt_to?: { address?: string }[]
  add_leading_header(name: string, value: string): void
  add_header(name: string, value: string): void
  remove_header(name: string): void
  reset_headers?(): void
}

export interface HarakaConnection {
  uuid: string
  tls: HarakaTls
  /** EHLO reply lines; element 0 is the greeting. */
  capabilities: string[] | null
  transaction: HarakaTransaction | null
  relaying?: boolean
  remote?: { ip?: string; host?: string | null }
  hello?: { host?: string | null }
  /** haraka-notes of the connection (auth_user after SMTP AUTH). */
  notes?: Record<string, unknown>
}

/** haraka-config's module config for this plugin (package defaults + Haraka overrides). */
export interface HarakaPluginConfig {
  get(name: string, opts: object, cb?: () => void): unknown
}

type LogFn = (...args: unknown[]) => void

/** The Plugin object Haraka copies our exports onto (`this` in every hook). */
export interface HarakaPlugin {
  name: string
  timeout?: number
  config: HarakaPluginConfig
  register_hook(hook: string, method: string, priority?: number): void
  logdebug: LogFn
  loginfo: LogFn
  logwarn: LogFn
  logerror: LogFn
  logcrit: LogFn
  [method: string]: unknown
}

/** Haraka calls a hook method as `plugin[method](next, connectionOrHmail, params)`. */
export type HookMethod = (this: HarakaPlugin, next: Next, target: unknown, params?: unknown) => void
