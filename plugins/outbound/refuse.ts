/**
 * The end of the road for a tagged message no hop could take securely: a
 * bounce whose DSN says 5.7.10 and names the hop and the reason, or — with
 * `[enforce] fallback = deliver_safe_part` and a part marked
 * `Link-Security-Fallback: yes` — that part alone, delivered as a new
 * untagged message with a header saying so (core/enforce/fallback.ts).
 *
 * The DSN is linksec's own (core/enforce/dsn.ts), with or without a
 * `config/outbound.bounce_message` template: `haraka -i` creates none, and
 * Haraka then fills an empty template (no From, no To, no Subject, no
 * text). Haraka still sends it — its bounce hook, its double-bounce rules,
 * its queue — because we replace only `populate_bounce_message` on this one
 * HMailItem (Haraka 3.3.x outbound/hmail.js: `_bounce` -> bounce hook ->
 * `bounce_respond` -> `populate_bounce_message(from, to, reason, cb)` ->
 * `outbound.send_email`). Should building ours fail, Haraka's runs instead.
 */
import { randomUUID } from 'node:crypto'
import * as os from 'node:os'
import {
  buildDsn,
  buildSafePartMessage,
  countTagged,
  type DsnHop,
  type FallbackAvailability,
} from '../../core/enforce'
import { NOTES_KEY } from '../notes'
import type { Runtime } from '../../core/runtime'
import type { HMailItem } from './hmail'
import { attemptOf, type HopRefusalAt } from './attempt'

type Refusal = HopRefusalAt

/** Haraka's outbound module: `send_email(from, to, contents, next, options)`. */
export interface HarakaOutbound {
  send_email(
    from: string,
    to: string[],
    contents: string,
    next: (code: number, msg?: unknown) => void,
    options?: { notes?: Record<string, unknown>; dot_stuffed?: boolean },
  ): void
  /** haraka-net-utils, as outbound/index.js exports it: the name Haraka's own bounces use. */
  net_utils?: { get_primary_host_name(): string }
}

/** The sentence for the DSN: each distinct reason once, in the order the hops were tried. */
function refusalText(refusals: readonly Refusal[]): string {
  const texts = [...new Set(refusals.map((r) => r.text))]
  if (texts.length === 1) return texts[0]!
  return `no mail server could take this message securely: ${texts.join('; ')}`
}

/** Marks every recipient failed with 5.7.10 (Haraka's bounce message reads these fields). */
function markRecipients(hmail: HMailItem, text: string, refusals: readonly Refusal[]): void {
  const hop = refusals[refusals.length - 1]?.hop
  for (const rcpt of hmail.todo.rcpt_to) {
    rcpt.dsn_action = 'failed'
    rcpt.dsn_status = '5.7.10'
    rcpt.dsn_code = 550
    rcpt.dsn_msg = text
    rcpt.reason = `550 5.7.10 ${text}`
    if (hop) rcpt.dsn_remote_mta = hop
  }
}

/** The queued message as text, dot-stuffing undone (Haraka queues it ready for DATA). */
function readQueuedMessage(hmail: HMailItem): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const s = hmail.data_stream()
    s.on('data', (c: Buffer | string) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)))
    s.on('error', reject)
    s.on('end', () => resolve(Buffer.concat(chunks).toString('latin1').replace(/^\.\./gm, '.')))
  })
}

/** The header block of the queued message (dot-stuffing undone); the body is read past, not kept. */
function readQueuedHeaders(hmail: HMailItem): Promise<string> {
  return new Promise((resolve, reject) => {
    let head = ''
    let done = false
    const s = hmail.data_stream()
    s.on('data', (c: Buffer | string) => {
      if (done) return
      head += Buffer.isBuffer(c) ? c.toString('latin1') : c
      const end = /\r?\n\r?\n/.exec(head)
      if (end) {
        head = head.slice(0, end.index)
        done = true
      }
    })
    s.on('error', reject)
    s.on('end', () => resolve(head.replace(/^\.\./gm, '.')))
  })
}

/** This server's name as Haraka's own bounces give it (config/me). */
function reportingMta(outbound: HarakaOutbound | undefined): string {
  try {
    return outbound?.net_utils?.get_primary_host_name() || os.hostname()
  } catch {
    return os.hostname()
  }
}

/**
 * Makes Haraka's bounce of this HMailItem carry linksec's DSN. The facts are
 * taken now; the message headers are read when Haraka asks for the DSN.
 */
function installDsn(
  rt: Runtime,
  hmail: HMailItem,
  refusals: readonly Refusal[],
  fallback: FallbackAvailability,
  outbound: HarakaOutbound | undefined,
): void {
  const state = attemptOf(hmail)
  if (!state) return
  const proto = Object.getPrototypeOf(hmail) as HMailItem
  const retried = hmail.num_failures > 0
  const hops: DsnHop[] = refusals.map((r) => ({
    hop: r.hop,
    mta: r.mta,
    reason: r.reason,
    declared: r.declared,
    error: r.error,
    retried: retried && r.action === 'retry',
  }))
  const todo = hmail.todo
  hmail.populate_bounce_message = (from, to, reason, cb) => {
    const haraka = () => proto.populate_bounce_message.call(hmail, from, to, reason, cb)
    readQueuedHeaders(hmail)
      .then((originalHeaders) =>
        buildDsn({
          reportingMta: reportingMta(outbound),
          sender: todo.mail_from.address ?? String(todo.mail_from),
          recipients: todo.rcpt_to.map((r) => r.address ?? String(r)),
          domain: todo.domain,
          requirement: state.req,
          enforcement: state.enforcement,
          hops,
          fallback,
          originalHeaders,
          arrivalDate: todo.queue_time ? new Date(todo.queue_time) : undefined,
          date: new Date(rt.now()),
          id: randomUUID(),
          policyRequiresTls: state.policy.tlsRequired || state.policy.certificateRequired,
        }),
      )
      .then(
        (dsn) => cb(null, [dsn.message]),
        (e: unknown) => {
          rt.log.warn("linksec: could not build the DSN; Haraka's own bounce goes out instead", {
            file: hmail.filename,
            error: String(e),
          })
          haraka()
        },
      )
      // Whatever Haraka's callback throws must not become an unhandled rejection (Haraka exits on one).
      .catch((e: unknown) =>
        rt.log.error('linksec: sending the DSN failed', { file: hmail.filename, error: String(e) }),
      )
  }
}

function sendEmail(outbound: HarakaOutbound, hmail: HMailItem, contents: string): Promise<boolean> {
  const from = hmail.todo.mail_from.address ?? ''
  const to = hmail.todo.rcpt_to.map((r) => r.address ?? '').filter(Boolean)
  return new Promise((resolve) => {
    // OK = 906 in haraka-constants; anything else means it was not queued.
    outbound.send_email(from, to, contents, (code) => resolve(code === 906), {
      notes: { [NOTES_KEY]: { fallback: true } },
      dot_stuffed: false,
    })
  })
}

/** Tries the safe-part fallback; true when the part was queued for delivery. */
async function deliverSafePart(rt: Runtime, hmail: HMailItem, outbound: HarakaOutbound, why: string) {
  const safe = buildSafePartMessage(await readQueuedMessage(hmail), why)
  if (!safe) return false
  const queued = await sendEmail(outbound, hmail, safe.replace(/(?<!\r)\n/g, '\r\n'))
  if (queued) rt.log.info('linksec: delivered only the safe part', { file: hmail.filename, reason: why })
  return queued
}

export function refuseMessage(
  rt: Runtime,
  hmail: HMailItem,
  refusals: Refusal[],
  outbound?: HarakaOutbound,
): void {
  const text = refusalText(refusals)
  const state = attemptOf(hmail)
  const fallbackOn = rt.config.enforce.fallback === 'deliver_safe_part' && outbound !== undefined
  const bounce = () => {
    markRecipients(hmail, text, refusals)
    installDsn(rt, hmail, refusals, fallbackOn ? 'no_marked_part' : 'off', outbound)
    // HMailItem.prototype.bounce (Haraka outbound/hmail.js), called on this item.
    const proto = Object.getPrototypeOf(hmail) as { bounce: (this: unknown, why: string) => void }
    proto.bounce.call(hmail, text)
  }
  if (!fallbackOn) return bounce()
  deliverSafePart(rt, hmail, outbound, text).then(
    (done) => {
      if (!done) return bounce()
      if (state) countTagged(rt, state.req, 'fallback_delivered')
      hmail.discard()
    },
    (e: unknown) => {
      rt.log.error('linksec: safe-part fallback failed; bouncing instead', { error: String(e) })
      bounce()
    },
  )
}
