/**
 * The end of the road for a tagged message no hop could take securely: a
 * bounce whose DSN says 5.7.10 and names the hop and the reason, or — with
 * `[enforce] fallback = deliver_safe_part` and a part marked
 * `Link-Security-Fallback: yes` — that part alone, delivered as a new
 * untagged message with a header saying so (core/enforce/fallback.ts).
 */
import { buildSafePartMessage, countTagged } from '../../core/enforce'
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
}

/** The sentence for the DSN: each distinct reason once, in the order the hops were tried. */
export function refusalText(refusals: readonly Refusal[]): string {
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
export function readQueuedMessage(hmail: HMailItem): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const s = hmail.data_stream()
    s.on('data', (c: Buffer | string) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)))
    s.on('error', reject)
    s.on('end', () => resolve(Buffer.concat(chunks).toString('latin1').replace(/^\.\./gm, '.')))
  })
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
  const bounce = () => {
    markRecipients(hmail, text, refusals)
    Object.getPrototypeOf(hmail).bounce.call(hmail, text)
  }
  if (rt.config.enforce.fallback !== 'deliver_safe_part' || !outbound) return bounce()
  deliverSafePart(rt, hmail, outbound, text).then(
    (done) => {
      if (!done) return bounce()
      if (state) countTagged(rt, state.req, 'fallback_delivered')
      hmail.discard()
    },
    (e) => {
      rt.log.error('linksec: safe-part fallback failed; bouncing instead', { error: String(e) })
      bounce()
    },
  )
}
