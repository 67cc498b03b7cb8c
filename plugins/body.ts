/**
 * Replacing a Haraka transaction's body (the sign step's multipart/signed).
 * Haraka keeps the header fields in `txn.header.header_list` and the whole
 * message in `txn.message_stream`, whose own header section is skipped on
 * output and replaced by header_list (haraka-message-stream's
 * HeaderSkipper). So a new stream of the same class, sharing header_list,
 * is filled with a header section and the new body line by line, as
 * Haraka's DATA handler fills the first one, and takes the old one's place.
 *
 * The stream holds lines in their SMTP wire form: dot-stuffed (RFC 5321
 * §4.5.2), as Transaction.add_data stores what the client sent. Readers
 * undo it (get_data(), the queue's message_stream.pipe() default) or send it
 * as stored (outbound with `dot_stuffed: false`). So every body line that
 * starts with "." is stored with one more: unstuffed, a ".." line would lose
 * a dot and break the signature, and a lone "." would end DATA at the next
 * hop with the rest of the message lost.
 */
import type { HarakaTransaction } from './haraka'

interface HarakaMessageStream {
  add_line(line: Buffer): void
  add_line_end(cb?: () => void): void
  destroy?(): void
}

type StreamClass = new (cfg: unknown, id: string, headers: string[]) => HarakaMessageStream

interface WithStream {
  message_stream?: HarakaMessageStream
  cfg?: unknown
}

const DOT = 0x2e
const STUFF = Buffer.from('.')

export function replaceBody(txn: HarakaTransaction, body: Buffer): Promise<void> {
  const t = txn as HarakaTransaction & WithStream
  const old = t.message_stream
  if (!old) return Promise.reject(new Error('transaction without a message_stream'))
  const Stream = old.constructor as StreamClass
  // Its own id: a message large enough to spool to disk gets a spool file of its own.
  const next = new Stream(t.cfg ?? {}, `${txn.uuid}.signed`, txn.header.header_list)
  for (const line of txn.header.header_list)
    next.add_line(Buffer.from(line.replace(/\r?\n$/, '\r\n'), 'latin1'))
  next.add_line(Buffer.from('\r\n'))
  let at = 0
  while (at < body.length) {
    const nl = body.indexOf(0x0a, at)
    const end = nl === -1 ? body.length : nl + 1
    next.add_line(body[at] === DOT ? Buffer.concat([STUFF, body.subarray(at, end)]) : body.subarray(at, end))
    at = end
  }
  return new Promise((resolve) =>
    next.add_line_end(() => {
      t.message_stream = next
      old.destroy?.()
      resolve()
    }),
  )
}
