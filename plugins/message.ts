/**
 * The Haraka side of the message pipeline, at data_post: the plain
 * MessageFacts (core/message/facts.ts) from the connection and transaction,
 * one run of core/message, and its result translated: header edits
 * (plugins/headers.ts), Haraka's quarantine and discard notes, the reply,
 * and one decision line + linksec_messages_total count per message
 * (core/decision-log.ts).
 *
 * Quarantine means Haraka's `queue/quarantine` plugin keeps the message: it
 * reads `transaction.notes.quarantine` (true: `<quarantine_path>/YYYYMMDD/<uuid>`,
 * quarantine_path from quarantine.ini, default /var/spool/haraka/quarantine)
 * and then answers what `transaction.notes.quarantine_action` says; we set
 * OK, so the message is kept there and not delivered. List `queue/quarantine`
 * in config/plugins (the message otherwise goes on, carrying our
 * Authentication-Results). Discard sets `transaction.notes.discard`, which
 * Haraka's `queue/discard` reads.
 */
import { logDecision } from '../core/decision-log'
import { isTls } from '../core/inbound'
import {
  MESSAGE_STEPS,
  runMessage,
  type AdapterProfile,
  type MessageFacts,
  type MessageResult,
  type MessageStep,
} from '../core/message'
import type { Runtime } from '../core/runtime'
import type { DutyContext } from './duty'
import { OK, type HarakaConnection, type HarakaTransaction, type Next } from './haraka'
import { replaceBody } from './body'
import { applyHeaderEdits, flushStagedHeaders } from './headers'
import { tlsFactsOf } from './inbound'
import { linksecNotes } from './notes'
import { policyProviderFor } from './outbound/policy'
import { harakaReply } from './reply'

interface MessageStream {
  add_line: (this: MessageStream, line: Buffer | string) => unknown
  get_data(cb: (data: Buffer) => void): void
  get_data(options: { skip_headers: boolean }, cb: (data: Buffer) => void): void
}

type WithStream = HarakaTransaction & { message_stream?: MessageStream }

/**
 * The body lines of one transaction as its message stream stored them (SMTP
 * wire form: dot-stuffed, each line with its own line end), kept as they
 * arrive so that data_post reads them without a pass through the stream's
 * transform pipeline (bench/README.md, stop 21: 19 of ~150 µs per message).
 * `lines` is undefined once the capture cannot stand for the stream: more
 * than MAX_CAPTURED_BYTES, a line that is not exactly one line.
 */
interface BodyCapture {
  stream: MessageStream
  lines: Buffer[] | undefined
  bytes: number
  inBody: boolean
}

/**
 * Larger bodies are read through the stream at data_post, as before. The
 * kept lines hold the socket reads they were cut from, next to the stream's
 * own copy: the cap bounds that second copy per session in DATA.
 */
const MAX_CAPTURED_BYTES = 256 * 1024

const captures = new WeakMap<HarakaTransaction, BodyCapture>()

const CR = 0x0d
const LF = 0x0a
const DOT = 0x2e

/**
 * At the DATA command, before any line: every line Haraka hands the
 * transaction's message stream (Transaction.add_data, and end_data for a
 * message without a blank line) is also kept here once the header section
 * has ended. The end of the header section is the stream's own rule
 * (haraka-message-stream's HeaderSkipper): the first line that is CRLF or a
 * bare LF alone.
 */
export function captureBody(txn: HarakaTransaction): void {
  const stream = (txn as WithStream).message_stream
  if (!stream || typeof stream.add_line !== 'function') return
  const cap: BodyCapture = { stream, lines: [], bytes: 0, inBody: false }
  const addLine = stream.add_line
  stream.add_line = function (this: MessageStream, line: Buffer | string) {
    const lines = cap.lines
    if (lines) {
      const buf = typeof line === 'string' ? Buffer.from(line) : line
      const lf = buf.indexOf(LF)
      if (lf !== -1 && lf !== buf.length - 1) cap.lines = undefined
      else if (cap.inBody) {
        cap.bytes += buf.length
        if (cap.bytes > MAX_CAPTURED_BYTES) cap.lines = undefined
        else lines.push(buf)
      } else if ((buf.length === 2 && buf[0] === CR && buf[1] === LF) || (buf.length === 1 && buf[0] === LF))
        cap.inBody = true
    }
    return addLine.call(this, line)
  }
  captures.set(txn, cap)
}

/** The captured body, unstuffed as get_data() unstuffs (a leading ".." loses one dot), or undefined. */
function capturedBody(txn: HarakaTransaction, stream: MessageStream): Buffer | undefined {
  const cap = captures.get(txn)
  // Another stream (a replaced body) or no end of headers seen: the stream decides.
  if (!cap?.lines || cap.stream !== stream || !cap.inBody) return undefined
  const lines = cap.lines
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!
    if (l.length >= 2 && l[0] === DOT && l[1] === DOT) lines[i] = l.subarray(1)
  }
  cap.lines = undefined // read once: the lines are not needed twice
  captures.delete(txn)
  return Buffer.concat(lines)
}

/**
 * The message as Haraka will queue it (header_list + body, CRLF), read once
 * per message and only by a step that needs it.
 *
 * The header section is built here from header_list, and the body is the
 * lines captured since DATA (captureBody), or else read through the stream
 * (`skip_headers`, haraka-message-stream 2.x, which Haraka ~3.3 ships): the
 * stream would emit the same header_list lines, CRLF-ended and dot-stuffed
 * then unstuffed, each one a chunk through its line transformer
 * (bench/README.md, stop 20). Without header_list the stream's own raw
 * header section is the message's, so it is read whole as before. UTF-8,
 * as the stream encodes header_list. get_data() hands over a Buffer of its
 * own, used as is.
 */
export function readMessage(txn: HarakaTransaction): Promise<Buffer> {
  const stream = (txn as WithStream).message_stream
  if (!stream) return Promise.reject(new Error('transaction without a message_stream'))
  const list = txn.header.header_list
  if (!list.length) return new Promise((resolve) => stream.get_data(resolve))
  let head = ''
  for (const line of list) head += line.replace(/\r?\n/g, '\r\n')
  head += '\r\n'
  const body = capturedBody(txn, stream)
  if (body) return Promise.resolve(Buffer.concat([Buffer.from(head), body]))
  return new Promise((resolve) =>
    stream.get_data({ skip_headers: true }, (b) => resolve(Buffer.concat([Buffer.from(head), b]))),
  )
}

/** The pipeline's facts from Haraka's connection and transaction. */
export function messageFacts(conn: HarakaConnection, txn: HarakaTransaction): MessageFacts {
  const authUser = conn.notes?.auth_user
  return {
    queueId: txn.uuid,
    client: {
      host: conn.remote?.host ?? undefined,
      address: conn.remote?.ip,
      helo: conn.hello?.host ?? undefined,
    },
    submitter: {
      authUser: typeof authUser === 'string' ? authUser : undefined,
      relaying: Boolean(conn.relaying),
    },
    tls: tlsFactsOf(conn),
    sender: txn.mail_from?.format?.() ?? '',
    requiretls: linksecNotes(txn).requiretls === true,
    recipients: (txn.rcpt_to ?? []).map((r) => r.address ?? String(r as unknown)),
    headerValues: (name) => txn.header.get_all(name),
    message: () => readMessage(txn),
    bodyTruncated: false,
  }
}

/** Haraka's outbound duty checks every hop at delivery; recipient domains are looked up through its provider. */
export function harakaProfile(rt: Runtime): AdapterProfile {
  return { adapter: 'haraka', outbound: 'per-hop', peerPolicy: (d) => policyProviderFor(rt).resolve(d) }
}

/** Applies what the pipeline decided to the transaction (edits, notes); the reply is harakaReply's. */
export function applyResult(txn: HarakaTransaction, facts: MessageFacts, r: MessageResult): void {
  const notes = linksecNotes(txn)
  // Written into the queue file: the outbound duty reads them at delivery.
  notes.requirement = r.requirement
  notes.inbound = { tls: isTls(facts.tls), ...facts.tls }
  applyHeaderEdits(txn, r.headers)
  if (r.verdict.action === 'quarantine') {
    notes.action = 'quarantine'
    txn.notes.quarantine = true
    txn.notes.quarantine_action = OK
  } else if (r.verdict.action === 'discard') {
    notes.action = 'discard'
    txn.notes.discard = true
  }
}

/** The data_post hook body for a given list of steps. */
export function dataPostHandler(steps: readonly MessageStep[] = MESSAGE_STEPS) {
  return async (ctx: DutyContext, next: Next, target: unknown): Promise<void> => {
    const conn = target as HarakaConnection
    const txn = conn.transaction
    if (!txn) throw new Error('data_post without a transaction')
    const facts = messageFacts(conn, txn)
    const r = await runMessage(ctx.rt, facts, harakaProfile(ctx.rt), { steps })
    applyResult(txn, facts, r)
    // The sign step's multipart/signed body, before queueing (DKIM signs at queue_outbound, after us).
    if (r.body) await replaceBody(txn, r.body)
    logDecision(ctx.rt, r.decision)
    next(...harakaReply(r.verdict))
  }
}

/** The data hook body: keep the body lines as they arrive (captureBody). */
export function dataHandler(_ctx: DutyContext, next: Next, target: unknown): void {
  const txn = (target as HarakaConnection).transaction
  if (txn) captureBody(txn)
  next()
}

/** The queue/queue_outbound hook body: write the staged header additions, then let the queue plugin run. */
export function queueHandler(_ctx: DutyContext, next: Next, target: unknown): void {
  const txn = (target as HarakaConnection).transaction
  if (txn) flushStagedHeaders(txn)
  next()
}
