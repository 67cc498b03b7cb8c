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
  get_data(cb: (data: Buffer) => void): void
  get_data(options: { skip_headers: boolean }, cb: (data: Buffer) => void): void
}

/**
 * The message as Haraka will queue it (header_list + body, CRLF), read once
 * per message and only by a step that needs it. get_data() hands over a
 * Buffer of its own (haraka-message-stream concatenates the chunks into a new
 * one), so it is used as is, not copied again.
 *
 * The header section is built here from header_list, and only the body is
 * read through the stream (`skip_headers`, haraka-message-stream 2.x, which
 * Haraka ~3.3 ships): the stream would emit the same header_list lines,
 * CRLF-ended and dot-stuffed then unstuffed, each one a chunk through its
 * line transformer — a third of the read's cost for a small message
 * (bench/README.md, stop 20). Without header_list the stream's own raw
 * header section is the message's, so it is read whole as before. UTF-8,
 * as the stream encodes header_list.
 */
export function readMessage(txn: HarakaTransaction): Promise<Buffer> {
  const stream = (txn as HarakaTransaction & { message_stream?: MessageStream }).message_stream
  if (!stream) return Promise.reject(new Error('transaction without a message_stream'))
  const list = txn.header.header_list
  if (!list.length) return new Promise((resolve) => stream.get_data(resolve))
  let head = ''
  for (const line of list) head += line.replace(/\r?\n/g, '\r\n')
  head += '\r\n'
  return new Promise((resolve) =>
    stream.get_data({ skip_headers: true }, (body) => resolve(Buffer.concat([Buffer.from(head), body]))),
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

/** The queue/queue_outbound hook body: write the staged header additions, then let the queue plugin run. */
export function queueHandler(_ctx: DutyContext, next: Next, target: unknown): void {
  const txn = (target as HarakaConnection).transaction
  if (txn) flushStagedHeaders(txn)
  next()
}
