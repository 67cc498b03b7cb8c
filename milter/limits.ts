/**
 * Memory bounds of the milter. Each session keeps at most [milter]
 * max_headers header fields and max_header_bytes of them, max_macro_bytes of
 * macros, and the body up to [verify] max_message_bytes; and everything the
 * sessions keep together (headers, bodies, macros) stays under
 * max_held_bytes. Past a bound the session drops what it held for the
 * message and, at the next event the MTA waits for (end of message under
 * Postfix), answers:
 * - 552 5.3.4 when the message itself is too big for this server (RFC 3463
 *   X.3.4), so retrying cannot help;
 * - 451 4.3.1 when the server as a whole holds too much right now: the
 *   message is fine and will pass when retried.
 * A connection that does not bring a message to its end within [milter]
 * session_timeout_ms (of connecting, or of its previous message's end) is
 * answered 451 4.4.2 at its next awaited reply and closed (session_time).
 * Each refusal is counted in linksec_milter_limits_total{limit}.
 */
import type { LinksecConfig } from '../core/config'
import { BLOCK_BYTES, BlockPool } from './body-blocks'
import { reject, tempfail } from '../core/verdict'
import { verdictResponse } from './reply'
import type { MilterResponse } from './wire/types'

/** The `limit` label of linksec_milter_limits_total: a small fixed set. */
export type LimitName =
  'headers' | 'header_bytes' | 'macro_bytes' | 'held_bytes' | 'message_bytes' | 'session_time'

export interface SessionLimits {
  maxHeaders: number
  maxHeaderBytes: number
  maxMacroBytes: number
  /** Shared by every session of one listener. */
  held: HeldBytes
  /** Body blocks, shared by the same sessions (milter/body-blocks.ts). */
  blocks: BlockPool
  /** Counts one refusal (the metric). */
  onLimit?: (limit: LimitName) => void
}

/** Bytes held by all sessions together. */
export class HeldBytes {
  private used = 0

  constructor(readonly max: number) {}

  get bytes(): number {
    return this.used
  }

  /** Reserves n bytes; false (nothing reserved) if that would pass the bound. */
  take(n: number): boolean {
    if (this.used + n > this.max) return false
    this.used += n
    return true
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n)
  }

  private processing = 0

  /**
   * Starts checking a message that needs `extra` bytes beyond what it holds:
   * reserved if they fit; granted unreserved if no other message is being
   * checked; otherwise refused (undefined). Returns the bytes taken, to give
   * back to endProcessing.
   */
  beginProcessing(extra: number): number | undefined {
    const taken = this.take(extra) ? extra : this.processing === 0 ? 0 : undefined
    if (taken !== undefined) this.processing++
    return taken
  }

  endProcessing(taken: number): void {
    this.processing--
    this.release(taken)
  }
}

/** No bound at all: sessions built without a server (unit tests, the codec fuzzer). */
export function unlimited(): SessionLimits {
  const big = Number.MAX_SAFE_INTEGER
  return {
    maxHeaders: big,
    maxHeaderBytes: big,
    maxMacroBytes: big,
    held: new HeldBytes(big),
    blocks: new BlockPool(0),
  }
}

export function limitsFromConfig(
  cfg: LinksecConfig['milter'],
  held: HeldBytes,
  onLimit?: (l: LimitName) => void,
): SessionLimits {
  return {
    maxHeaders: cfg.max_headers,
    maxHeaderBytes: cfg.max_header_bytes,
    maxMacroBytes: cfg.max_macro_bytes,
    held,
    blocks: new BlockPool(Math.floor(held.max / BLOCK_BYTES)),
    onLimit,
  }
}

/** The reply for a bound passed; `bound` is the figure that was passed. */
export function limitReply(limit: LimitName, bound: number): MilterResponse {
  switch (limit) {
    case 'headers':
      return tooBig(`the message has more than ${bound} header fields`, 'max_headers')
    case 'header_bytes':
      return tooBig(`the message header is larger than ${bound} bytes`, 'max_header_bytes')
    case 'message_bytes':
      return tooBig(`the message is larger than the ${bound} bytes this server can hold`, 'max_held_bytes')
    case 'macro_bytes':
      return busy(`the MTA sent more than ${bound} bytes of milter macros on this connection`)
    case 'held_bytes':
      return busy('this server is holding too many messages right now')
    case 'session_time':
      // RFC 3463 X.4.2: the connection is too slow to be worth holding; a retry on a fresh one can pass.
      return verdictResponse(
        tempfail(
          451,
          '4.4.2',
          `this milter connection did not bring a message to its end within ${bound} ms (linksec [milter] session_timeout_ms); please try again`,
          'milter_limit',
        ),
      )
  }
}

function tooBig(what: string, key: string): MilterResponse {
  return verdictResponse(
    reject(552, '5.3.4', `${what}; send a smaller message (linksec [milter] ${key})`, 'milter_limit'),
  )
}

function busy(what: string): MilterResponse {
  return verdictResponse(tempfail(451, '4.3.1', `${what}; please try again later`, 'milter_limit'))
}
