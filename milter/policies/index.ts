/**
 * The message policies the milter runs at end of message, in order. The
 * first verdict other than continue/accept ends the run; header edits of the
 * policies that ran are all applied. Add a policy with one line here, e.g.
 *   messagePolicy('openpgp', verifySignature, { needsBody: true }),
 */
import type { MessagePolicy } from '../message'
import { inboundLinkPolicy } from './inbound-link'
import { openpgpPolicy } from './openpgp'

export const MESSAGE_POLICIES: readonly MessagePolicy[] = [inboundLinkPolicy, openpgpPolicy]
