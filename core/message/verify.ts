/**
 * Sender signatures (core/verify): the whole message as received goes to
 * verifyMessage; its Authentication-Results field (x-openpgp=…) is put at
 * the top and its verdict answers (550 5.7.1, 451 4.7.5, quarantine, or
 * continue for a tagged result). Forged A-R fields were already removed by
 * the inbound-link step.
 */
import { verifyMessage } from '../verify'
import { messageStep } from './step'

export const verifyStep = messageStep(
  'verify',
  async (msg, rt) => {
    if (!rt.config.verify.enabled)
      return { verdict: { action: 'continue', reason: 'verify_disabled' }, headers: [] }
    const d = await verifyMessage(rt, await msg.message(), { truncated: msg.bodyTruncated })
    return { verdict: d.verdict, headers: d.headers }
  },
  { needsBody: true },
)
