/**
 * The Web Key Service step (core/wks): a message to a submission address
 * (`[wks] local_part@<our domain>`) is taken here, before delivery, by
 * either adapter. A submission gets its confirmation request through
 * `[wks] relay`; a confirmation publishes the key. The message itself is
 * then discarded when the submission address was its only recipient
 * (nothing else reads that mailbox). A refusal is a 5xx the sender's MTA
 * bounces with our reason; a full pending store or a relay that fails, a
 * 4xx (the client retries).
 */
import { reject, tempfail, type Verdict } from '../verdict'
import { receiveWks, sendWksMail, submissionDomain, type WksResult } from '../wks'
import type { Runtime } from '../runtime'
import { messageStep } from './step'

export const wksStep = messageStep(
  'wks',
  async (msg, rt) => {
    if (!rt.config.wks.enabled)
      return { verdict: { action: 'continue', reason: 'wks_disabled' }, headers: [] }
    const to = msg.recipients.filter((r) => submissionDomain(rt, r) !== undefined)
    if (to.length === 0) return { verdict: { action: 'continue', reason: 'not_wks' }, headers: [] }
    const r = await receiveWks(rt, await msg.message(), to[0]!.replace(/^<|>$/g, ''))
    const only = to.length === msg.recipients.length
    return { verdict: await verdictFor(rt, r, only), headers: [], log: { wks: r.outcome } }
  },
  { needsBody: true },
)

async function verdictFor(rt: Runtime, r: WksResult, only: boolean): Promise<Verdict> {
  const taken = (reason: string): Verdict =>
    only ? { action: 'discard', reason } : { action: 'continue', reason }
  if (r.outcome === 'published') return taken('wks_published')
  if (r.outcome === 'confirmation_sent') {
    try {
      await sendWksMail(rt, r.reply)
    } catch (e) {
      rt.log.warn('wks confirmation request not sent', { address: r.address, error: String(e) })
      return tempfail(
        451,
        '4.4.1',
        'the key confirmation request could not be sent; please try again later',
        'wks_relay',
      )
    }
    return taken('wks_confirmation_sent')
  }
  if (r.outcome === 'pending_full' || r.outcome === 'no_submission_key')
    return tempfail(451, '4.3.1', `key submission not taken now: ${r.reason}`, `wks_${r.outcome}`)
  return reject(550, '5.7.1', `key submission refused: ${r.reason}`, `wks_${r.outcome}`)
}
