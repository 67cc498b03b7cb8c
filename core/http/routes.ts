/**
 * The paths linksec answers over HTTP: /metrics (Prometheus text format),
 * /healthz, /v1/recipients/<address>, /v1/domains and the WKD paths when their handlers
 * are given. Used by the
 * standalone listener (server.ts) and mounted on Haraka's own HTTP server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { describeError } from '../errors'
import type { Runtime } from '../runtime'
import { healthOf } from './health'
import { DOMAINS_PATH, RECIPIENTS_PREFIX, type RecipientsHandler } from './recipients'

/** Answers a WKD request and returns true, or returns false when the path is not a WKD path. */
export type WkdHandler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>

/** Where /metrics comes from: a prom-client Registry, or a cluster aggregate of several. */
export interface MetricsSource {
  readonly contentType: string
  metrics(): Promise<string>
}

export interface RouteOptions {
  wkdHandler?: WkdHandler
  /** GET /v1/recipients/<address> (core/http/recipients.ts); absent = 404. */
  recipients?: RecipientsHandler
  /** Default: the runtime's registry. */
  metrics?: MetricsSource
}

export type RequestRouter = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>

export function createRouter(rt: Runtime, opts: RouteOptions = {}): RequestRouter {
  const source = opts.metrics ?? rt.metrics.registry
  return async (req, res) => {
    const path = pathOf(req)
    if (path === '/metrics') await serveMetrics(rt, source, res)
    else if (path === '/healthz') serveHealth(rt, res)
    else if (opts.recipients && (path.startsWith(RECIPIENTS_PREFIX) || path === DOMAINS_PATH))
      await opts.recipients(req, res, path)
    else if (opts.wkdHandler) return opts.wkdHandler(req, res)
    else return false
    return true
  }
}

/** The path without query string; "" when the target is not origin-form. */
function pathOf(req: IncomingMessage): string {
  const target = req.url ?? ''
  if (!target.startsWith('/')) return ''
  const q = target.indexOf('?')
  return q < 0 ? target : target.slice(0, q)
}

async function serveMetrics(rt: Runtime, source: MetricsSource, res: ServerResponse): Promise<void> {
  let body: string
  try {
    body = await source.metrics()
  } catch (e) {
    rt.log.error('metrics collection failed', { error: describeError(e) })
    return sendText(res, 500, 'metrics collection failed; see the linksec log\n')
  }
  send(res, 200, source.contentType, body)
}

function serveHealth(rt: Runtime, res: ServerResponse): void {
  const report = healthOf(rt).report()
  const status = report.status === 'ok' ? 200 : 503
  sendJson(res, status, report)
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value, null, 2) + '\n')
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v)
  send(res, status, 'text/plain; charset=utf-8', text)
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status
  res.setHeader('Content-Type', contentType)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.setHeader('Cache-Control', 'no-store')
  // Node leaves the body out of HEAD responses itself.
  res.end(body)
}
