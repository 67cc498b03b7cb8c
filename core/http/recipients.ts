/**
 * GET /v1/recipients/<address>: what linksec knows about an address before
 * anyone writes to it (core/send/recipient.ts), for application developers
 * (docs/sending-api.md). Loopback clients only unless `[http]
 * recipients_allow` lists the client's network; a token bucket per client
 * address (`recipients_rate` per minute, `recipients_burst` at once) answers
 * 429 with Retry-After beyond it. A bad address is 400 with a sentence.
 * GET /v1/domains, under the same rules, lists the declarations this
 * process learned from peers (a Haraka without a fleet Redis holds them in
 * memory only), for `linksec domains export --server`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import * as net from 'node:net'
import { parseAddress } from '../keys'
import { learnedStoreFor } from '../policy'
import { learnedToJson } from '../policy/policy-list'
import type { Runtime } from '../runtime'
import { trustedNetworks } from '../sign/who'
import { badAddressReason, lookupRecipient, recipientToJson } from '../send/recipient'
import { createRateLimiter } from './rate-limit'
import { sendJson, sendText } from './respond'

export const RECIPIENTS_PREFIX = '/v1/recipients/'
/** What this process learned from peers, in the shared-list shape (`linksec domains export --server`). */
export const DOMAINS_PATH = '/v1/domains'

const LOOPBACK = trustedNetworks(['127.0.0.0/8', '::1/128'])

export type RecipientsHandler = (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>

/** The client's address, IPv4-mapped IPv6 as IPv4. */
function clientOf(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? ''
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a
}

function listed(list: net.BlockList, ip: string): boolean {
  const type = net.isIPv6(ip) ? 'ipv6' : net.isIPv4(ip) ? 'ipv4' : undefined
  return type !== undefined && list.check(ip, type)
}

export function createRecipientsHandler(rt: Runtime): RecipientsHandler {
  const cfg = rt.config.http
  const allow = trustedNetworks(cfg.recipients_allow)
  const limiter = createRateLimiter({
    perMinute: cfg.recipients_rate,
    burst: cfg.recipients_burst,
    now: () => rt.now(),
  })
  // One count per answer; a metric failure never changes the answer.
  const count = (status: number, advice = 'none') => {
    try {
      rt.metrics.recipientRequests.inc({ status: String(status), advice })
    } catch {
      // ignored
    }
  }
  return async (req, res, path) => {
    const client = clientOf(req)
    if (!listed(LOOPBACK, client) && !listed(allow, client)) {
      count(403)
      return sendText(
        res,
        403,
        `clients at ${client} may not ask about recipients; list the network in [http] recipients_allow\n`,
      )
    }
    const wait = limiter.take(client)
    if (wait > 0) {
      count(429)
      return sendText(
        res,
        429,
        `too many recipient look-ups from ${client}; retry in ${wait} s ([http] recipients_rate)\n`,
        { 'Retry-After': String(wait) },
      )
    }
    if (path === DOMAINS_PATH) {
      const now = rt.now()
      const policies = Object.fromEntries(
        learnedStoreFor(rt)
          .snapshot(now)
          .map(([domain, d]) => [domain, learnedToJson(d, now)]),
      )
      return sendJson(res, 200, {
        author: 'linksec (learned by this process)',
        timestamp: new Date(now).toISOString(),
        policies,
      })
    }
    let input: string
    try {
      input = decodeURIComponent(path.slice(RECIPIENTS_PREFIX.length))
    } catch {
      count(400)
      return sendText(res, 400, 'the address is not valid percent-encoded UTF-8 (RFC 3986 §2.1)\n')
    }
    const why = badAddressReason(input)
    const address = why === undefined ? parseAddress(input) : undefined
    if (!address) {
      count(400)
      return sendText(res, 400, `${why ?? 'not an address'}\n`)
    }
    const facts = await lookupRecipient(rt, address)
    count(200, facts.advice)
    sendJson(res, 200, recipientToJson(facts))
  }
}
