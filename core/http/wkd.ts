/**
 * The key-server role (docs/architecture.md §6.4): Web Key Directory paths for the keys in
 * `[keys] dir` (draft-koch-openpgp-webkey-service §3.1, §4.5):
 *
 *   advanced  /.well-known/openpgpkey/<domain>/hu/<hash>   and  .../<domain>/policy
 *   direct    /.well-known/openpgpkey/hu/<hash>            and  .../policy  (domain = Host)
 *
 * Keys are served binary (application/octet-stream) with only the
 * requested address's user ID (several keys for one address, during a
 * rotation, are served as their concatenation); HEAD works. The policy file
 * is empty unless the Web Key Service is on (core/wks): then it names the
 * `submission-address` and `protocol-version: 3` (§4.5), and the
 * `submission-address` file beside it (§4.1, what older clients read) holds
 * the address too.
 * Mounted by core/http/server.ts and by the Haraka plugin.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { describeError } from '../errors'
import { keyStoreFor } from '../keys'
import type { Runtime } from '../runtime'
import { submissionAddress, wksDomains } from '../wks/names'

const PREFIX = '/.well-known/openpgpkey/'
const HASH = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{32}$/
const DOMAIN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/

type Layout = 'advanced' | 'direct'

interface WkdRequest {
  layout: Layout
  domain: string
  /** undefined for the policy and submission-address files. */
  hash?: string
  l?: string
  file?: 'policy' | 'submission-address'
}

const FILES = new Set(['policy', 'submission-address'])

type WkdHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>

export function createWkdHandler(rt: Runtime): WkdHandler {
  const store = keyStoreFor(rt)
  const count = (layout: string, status: number) =>
    rt.metrics.wkdRequests.inc({ layout, status: String(status) })
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://wkd.invalid')
    if (!url.pathname.startsWith(PREFIX)) return false
    const w = parseWkdPath(url, req.headers.host)
    const layout = w?.layout ?? 'unknown'
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      count(layout, 405)
      reply(res, 405, 'only GET and HEAD are served here\n', { Allow: 'GET, HEAD' })
      return true
    }
    try {
      const status = w ? await answer(rt, store, w, res) : notFound(res)
      count(layout, status)
    } catch (e) {
      rt.log.error('WKD request failed', { path: url.pathname, error: describeError(e) })
      count(layout, 500)
      reply(res, 500, 'key store unavailable; see the linksec log\n')
    }
    return true
  }
}

/** Splits a WKD path; undefined when it is not one of the four forms. */
function parseWkdPath(url: URL, host: string | undefined): WkdRequest | undefined {
  const parts = url.pathname.slice(PREFIX.length).split('/')
  const l = url.searchParams.get('l') ?? undefined
  const hostDomain = (host ?? '')
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '')
    .toLowerCase()
  let w: WkdRequest | undefined
  if (parts.length === 2 && parts[0] === 'hu') w = { layout: 'direct', domain: hostDomain, hash: parts[1], l }
  else if (parts.length === 1 && FILES.has(parts[0]!))
    w = { layout: 'direct', domain: hostDomain, file: parts[0] as WkdRequest['file'] }
  else if (parts.length === 3 && parts[1] === 'hu')
    w = { layout: 'advanced', domain: parts[0]!.toLowerCase(), hash: parts[2], l }
  else if (parts.length === 2 && FILES.has(parts[1]!))
    w = { layout: 'advanced', domain: parts[0]!.toLowerCase(), file: parts[1] as WkdRequest['file'] }
  if (!w || !DOMAIN.test(w.domain) || (w.hash !== undefined && !HASH.test(w.hash))) return undefined
  return w
}

async function answer(
  rt: Runtime,
  store: ReturnType<typeof keyStoreFor>,
  w: WkdRequest,
  res: ServerResponse,
): Promise<number> {
  if (w.hash === undefined) {
    if (!(await store.hasDomain(w.domain))) return notFound(res)
    const sa = wksDomains(rt).has(w.domain) && rt.config.wks.enabled ? submissionAddress(rt, w.domain) : ''
    if (w.file === 'submission-address') {
      if (!sa) return notFound(res)
      reply(res, 200, `${sa}\n`)
      return 200
    }
    // The policy file must exist; an empty one declares no options (§4.5).
    reply(res, 200, sa ? `submission-address: ${sa}\nprotocol-version: 3\n` : '')
    return 200
  }
  const hit = await store.byWkd(w.domain, w.hash, w.l)
  if (!hit) return notFound(res)
  res.statusCode = 200
  res.setHeader('Content-Type', 'application/octet-stream')
  res.setHeader('Content-Length', hit.ring.binary.length)
  res.setHeader('Access-Control-Allow-Origin', '*')
  res.setHeader('Cache-Control', 'max-age=3600')
  res.end(hit.ring.binary)
  return 200
}

function notFound(res: ServerResponse): number {
  reply(res, 404, 'no key for this address\n')
  return 404
}

function reply(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.statusCode = status
  res.setHeader('Content-Type', 'text/plain; charset=utf-8')
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.setHeader('Access-Control-Allow-Origin', '*')
  res.end(body)
}
