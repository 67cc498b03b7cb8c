/**
 * The key-server role (docs/architecture.md §6.4): Web Key Directory paths for the keys in
 * `[keys] dir` (draft-koch-openpgp-webkey-service §3.1, §4.5):
 *
 *   advanced  /.well-known/openpgpkey/<domain>/hu/<hash>   and  .../<domain>/policy
 *   direct    /.well-known/openpgpkey/hu/<hash>            and  .../policy  (domain = Host)
 *
 * Keys are served binary (application/octet-stream) with only the
 * requested address's user ID; HEAD works; the policy file is empty.
 * Mounted by core/http/server.ts and by the Haraka plugin.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { describeError } from '../errors'
import { keyStoreFor } from '../keys'
import type { Runtime } from '../runtime'

const PREFIX = '/.well-known/openpgpkey/'
const HASH = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{32}$/
const DOMAIN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/

type Layout = 'advanced' | 'direct'

interface WkdRequest {
  layout: Layout
  domain: string
  /** undefined for the policy file. */
  hash?: string
  l?: string
}

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
      const status = w ? await answer(store, w, res) : notFound(res)
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
export function parseWkdPath(url: URL, host: string | undefined): WkdRequest | undefined {
  const parts = url.pathname.slice(PREFIX.length).split('/')
  const l = url.searchParams.get('l') ?? undefined
  const hostDomain = (host ?? '')
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '')
    .toLowerCase()
  let w: WkdRequest | undefined
  if (parts.length === 2 && parts[0] === 'hu') w = { layout: 'direct', domain: hostDomain, hash: parts[1], l }
  else if (parts.length === 1 && parts[0] === 'policy') w = { layout: 'direct', domain: hostDomain }
  else if (parts.length === 3 && parts[1] === 'hu')
    w = { layout: 'advanced', domain: parts[0]!.toLowerCase(), hash: parts[2], l }
  else if (parts.length === 2 && parts[1] === 'policy')
    w = { layout: 'advanced', domain: parts[0]!.toLowerCase() }
  if (!w || !DOMAIN.test(w.domain) || (w.hash !== undefined && !HASH.test(w.hash))) return undefined
  return w
}

async function answer(
  store: ReturnType<typeof keyStoreFor>,
  w: WkdRequest,
  res: ServerResponse,
): Promise<number> {
  if (w.hash === undefined) {
    if (!(await store.hasDomain(w.domain))) return notFound(res)
    // The policy file must exist; an empty one declares no options (§4.5).
    reply(res, 200, '', { 'Content-Type': 'text/plain; charset=utf-8' })
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
