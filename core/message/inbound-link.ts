/**
 * The first step: state the inbound link's TLS facts in our own
 * Authentication-Results field (`x-tls=pass|none`), remove incoming fields
 * that claim our authserv-id (RFC 8601 §5), also under the name Haraka gives
 * them when it renames incoming ones (Original-Authentication-Results,
 * smtp.ini clean_auth_results), and refuse with 550 5.7.10 a tagged message
 * that arrived without TLS (core/inbound.ts).
 */
import { checkInboundLink, forgedAuthResults, tlsAuthResults } from '../inbound'
import { CONTINUE, type HeaderEdit } from '../verdict'
import { messageStep, type MessageView } from './step'

export const AUTH_RESULTS = 'Authentication-Results'
export const ORIGINAL_AUTH_RESULTS = 'Original-Authentication-Results'

/** Deletions of every A-R (and Original-A-R) field that claims our authserv-id. */
export function forgedResultEdits(msg: Pick<MessageView, 'headerValues'>, authservId: string): HeaderEdit[] {
  const edits: HeaderEdit[] = []
  for (const name of [AUTH_RESULTS, ORIGINAL_AUTH_RESULTS]) {
    for (const index of forgedAuthResults(authservId, msg.headerValues(name)))
      edits.push({ op: 'delete', name, index })
  }
  return edits
}

export const inboundLinkStep = messageStep('inbound-link', (msg, rt) => {
  const cfg = rt.config
  const id = cfg.main.authserv_id
  // Forged fields go whatever we add: nobody may speak in our name.
  const headers = forgedResultEdits(msg, id)
  if (cfg.inbound.tls_results)
    headers.push({ op: 'prepend', name: AUTH_RESULTS, value: tlsAuthResults(id, msg.tls) })
  const verdict = cfg.inbound.reject_tagged_plaintext ? checkInboundLink(msg.requirement, msg.tls) : CONTINUE
  return { verdict, headers }
})
