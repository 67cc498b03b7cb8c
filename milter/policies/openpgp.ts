/**
 * Sender signatures in the milter (DESIGN §4): at end of message the whole
 * message (headers as Postfix sent them, body in CRLF) goes to
 * core/verify's verifyMessage; its Authentication-Results field is inserted
 * at the top and its verdict replied (550 5.7.1, 451 4.7.5, quarantine).
 */
import type { HeaderEdit } from '../../core/verdict'
import { verifyMessage } from '../../core/verify'
import { messagePolicy, type InboundMessage } from '../message'

/** The message as received: header lines, the blank line, the body; the body copied once. */
export function rawMessage(msg: InboundMessage): Buffer {
  const head = msg.headers.map((h) => `${h.name}: ${h.value.replace(/\r?\n/g, '\r\n')}\r\n`).join('')
  const body = msg.bodyChunks ?? (msg.body ? [msg.body] : [])
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), ...body])
}

export const openpgpPolicy = messagePolicy(
  'openpgp',
  async (msg, rt) => {
    if (!rt.config.verify.enabled)
      return { verdict: { action: 'continue', reason: 'verify_disabled' }, headers: [] }
    const d = await verifyMessage(rt, rawMessage(msg), { truncated: msg.bodyTruncated })
    // The inbound-link policy (run first) already deletes forged fields; deleting twice would hit others.
    const headers: HeaderEdit[] = d.headers.filter((h) => h.op !== 'delete')
    return { verdict: d.verdict, headers }
  },
  { needsBody: true },
)
