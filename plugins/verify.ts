/**
 * The verify duty (DESIGN §4): at data_post the whole message as received
 * goes to core/verify's verifyMessage; its Authentication-Results field
 * (x-openpgp=…) is added at the top and its verdict answers the client
 * (550 5.7.1, 451 4.7.5, quarantine). Forged A-R fields are deleted here as
 * in the inbound duty; plugins/headers.ts drops the duplicate requests.
 */
import { verifyMessage } from '../core/verify'
import { CONTINUE, type MessageDecision } from '../core/verdict'
import type { Duty, MessageContext } from './duty'
import type { HarakaTransaction } from './haraka'

interface MessageStream {
  get_data(cb: (data: Buffer) => void): void
}

/**
 * The message as Haraka will queue it (header_list + body, CRLF), read once
 * per message and only by this duty. get_data() hands over a Buffer of its
 * own (haraka-message-stream concatenates the chunks into a new one), so it
 * is used as is, not copied again.
 */
export function readMessage(txn: HarakaTransaction): Promise<Buffer> {
  const stream = (txn as HarakaTransaction & { message_stream?: MessageStream }).message_stream
  if (!stream) return Promise.reject(new Error('transaction without a message_stream'))
  return new Promise((resolve) => stream.get_data(resolve))
}

export async function verifyStep(m: MessageContext): Promise<MessageDecision> {
  if (!m.rt.config.verify.enabled) return { verdict: CONTINUE, headers: [] }
  const d = await verifyMessage(m.rt, await readMessage(m.transaction))
  return { verdict: d.verdict, headers: d.headers }
}

export const verifyDuty: Duty = { name: 'verify', message: verifyStep }
