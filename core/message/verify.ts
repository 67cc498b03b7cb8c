/**
 * Sender signatures (core/verify): the whole message as received goes to
 * verifyMessage; its Authentication-Results field (x-openpgp=…) is put at
 * the top and its verdict answers (550 5.7.1, 451 4.7.5, quarantine, or
 * continue for a tagged result). Forged A-R fields were already removed by
 * the inbound-link step. Outgoing mail the sign step signs is not verified
 * (as OpenDKIM verifies only what it does not sign): unsigned as it
 * arrives, it would meet its own domain's sig=required.
 */
import { signsOutgoing } from '../sign/step'
import { verifyMessage } from '../verify'
import { messageStep } from './step'

export const verifyStep = messageStep(
  'verify',
  async (msg, rt) => {
    if (!rt.config.verify.enabled)
      return { verdict: { action: 'continue', reason: 'verify_disabled' }, headers: [] }
    if (rt.config.sign.enabled) {
      const { authUser: login, relaying } = msg.submitter
      const from = msg.headerValues('from')
      if (signsOutgoing(rt, { login, relaying, clientAddress: msg.client.address, from }))
        return { verdict: { action: 'continue', reason: 'verify_outgoing' }, headers: [] }
    }
    const d = await verifyMessage(rt, await msg.message(), { truncated: msg.bodyTruncated })
    return { verdict: d.verdict, headers: d.headers }
  },
  { needsBody: true },
)
