/**
 * The message policies the milter runs at end of message, in order. The
 * first verdict other than continue/accept ends the run; header edits of the
 * policies that ran are all applied. Add a policy with one line here, e.g.
 *   messagePolicy('openpgp', verifySignature, { needsBody: true }),
 *
 * Order matters: the inbound link first (a tagged message over plaintext is
 * refused before any lookup); the route policy before the signature check,
 * so a message the signature policy quarantines (Postfix's hold queue)
 * already carries its route header when an operator releases it, and a
 * message refused for its recipients costs no key lookup.
 */
import type { MessagePolicy } from '../message'
import { inboundLinkPolicy } from './inbound-link'
import { openpgpPolicy } from './openpgp'
import { routePolicy } from './route'

export const MESSAGE_POLICIES: readonly MessagePolicy[] = [inboundLinkPolicy, routePolicy, openpgpPolicy]
