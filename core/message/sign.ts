/**
 * Signing the domain's outgoing mail (core/sign): after verify, the sign
 * step decides from the submitter (SMTP AUTH login, client address) and the
 * From whether linksec signs, and if so replaces the body with the RFC 3156
 * multipart/signed form and the top-level MIME fields with its own. A
 * failure under the domain's sig=required answers 451 4.7.0 (or 550 5.7.1),
 * never an unsigned message; otherwise the message goes on unsigned,
 * counted. A body the adapter cut short is never signed.
 */
import { signStep as signMessageStep } from '../sign/step'
import { messageStep } from './step'

export const signStep = messageStep(
  'sign',
  async (msg, rt) => {
    if (!rt.config.sign.enabled)
      return { verdict: { action: 'continue', reason: 'sign_disabled' }, headers: [] }
    const d = await signMessageStep(rt, await msg.message(), {
      login: msg.submitter.authUser,
      clientAddress: msg.client.address,
      relaying: msg.submitter.relaying,
      truncated: msg.bodyTruncated,
    })
    // The decision line says what the signer did (linksec_signed_messages_total counts the same).
    return { verdict: d.verdict, headers: d.headers, body: d.body, log: { sign: d.outcome } }
  },
  { needsBody: true },
)
