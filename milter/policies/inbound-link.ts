/**
 * The first message policy (issue 2): state the inbound link's TLS facts in
 * our own Authentication-Results field (`x-tls=pass|none`), remove incoming
 * fields that claim our authserv-id (RFC 8601 §5), and reject with 550 5.7.10
 * a tagged message that arrived without TLS (DESIGN §3).
 */
import { checkInboundLink, forgedAuthResults, tlsAuthResults } from '../../core/inbound'
import { CONTINUE, type HeaderEdit } from '../../core/verdict'
import { headerValues, messagePolicy } from '../message'

const AR = 'Authentication-Results'

export const inboundLinkPolicy = messagePolicy('inbound-link', async (msg, rt) => {
  const id = rt.config.main.authserv_id
  const forged = forgedAuthResults(id, headerValues(msg.headers, AR))
  const headers: HeaderEdit[] = forged.map((index) => ({ op: 'delete', name: AR, index }))
  if (rt.config.inbound.tls_results)
    headers.push({ op: 'prepend', name: AR, value: tlsAuthResults(id, msg.tls) })
  const verdict = rt.config.inbound.reject_tagged_plaintext
    ? checkInboundLink(msg.requirement, msg.tls)
    : CONTINUE
  return { verdict, headers }
})
