/**
 * The parts of Haraka's outbound HMailItem, MX and client socket that the
 * outbound duty touches, typed (Haraka 3.3.x outbound/hmail.js,
 * haraka-net-utils HarakaMx, tls_socket.js pluggableStream). Keep it minimal.
 */
import type { EventEmitter } from 'node:events'

export interface HarakaAddress {
  user?: string | null
  host?: string | null
  address?: string
  original?: string
  format?(useUnicode?: boolean): string
  /** @haraka/email-address Address: "<user@host>". */
  toString(): string
}

/** A recipient of the todo, extended with the DSN fields Haraka's bounce message reads. */
export interface HarakaRecipient extends HarakaAddress {
  dsn_action?: string
  dsn_status?: string
  dsn_code?: number
  dsn_msg?: string
  dsn_remote_mta?: string
  dsn_smtp_code?: string
  dsn_smtp_extc?: string
  dsn_smtp_response?: string
  reason?: string
}

export interface HarakaTodo {
  domain: string
  mail_from: HarakaAddress
  rcpt_to: HarakaRecipient[]
  notes: Record<string, unknown>
  /** ms since the epoch, when the message entered the queue. */
  queue_time: number
  uuid?: string
}

export interface HarakaMx {
  exchange?: string
  port?: number
  /** The MX host name when `exchange` is an address it resolved to. */
  from_dns?: string
  path?: string
}

/** tls_socket's pluggableStream, as outbound gets it from client_pool. */
export interface HarakaClientSocket extends EventEmitter {
  write(data: string | Buffer, encoding?: unknown, cb?: unknown): boolean
  upgrade(options: Record<string, unknown>, cb: UpgradeCallback): void
  isEncrypted(): boolean
  isSecure(): boolean
  end(): void
}

export type UpgradeCallback = (
  authorized: boolean,
  verifyError: Error | string | null | undefined,
  cert: unknown,
  cipher: unknown,
) => void

export type TryDeliverOnSocket = (
  mx: HarakaMx,
  host: string,
  port: number,
  socket: HarakaClientSocket,
) => void
export type TempFail = (err: string, extra?: unknown) => void
export type Bounce = (err: string, opts?: unknown) => void

/** Haraka's bounce builder: `cb(err, lines)`, the lines joined make the DSN (outbound/hmail.js). */
export type PopulateBounceMessage = (
  from: unknown,
  to: unknown,
  reason: unknown,
  cb: (err: Error | null, lines?: string[]) => void,
) => void

export interface HMailItem {
  filename: string
  todo: HarakaTodo
  num_failures: number
  /** Set by Haraka from get_force_tls() before each MX is tried; read at STARTTLS and after the handshake. */
  force_tls?: boolean
  /** Per-instance overrides the outbound duty installs (see attempt.ts, refuse.ts). */
  get_force_tls: (mx: HarakaMx) => boolean
  try_deliver_host_on_socket: TryDeliverOnSocket
  temp_fail: TempFail
  bounce: Bounce
  populate_bounce_message: PopulateBounceMessage
  discard(): void
  data_stream(): NodeJS.ReadableStream
  logdebug(...args: unknown[]): void
  loginfo(...args: unknown[]): void
  logwarn(...args: unknown[]): void
  logerror(...args: unknown[]): void
}
