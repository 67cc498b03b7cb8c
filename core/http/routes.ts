/**
 * The one table of paths linksec answers over HTTP: /metrics (Prometheus
 * text format), /healthz, /v1/recipients/<address> and /v1/domains
 * (core/http/recipients.ts: loopback by default, rate-limited, on when
 * `[http] recipients_api` is) and the WKD paths when their handler is given.
 * Every listener routes through it: `linksec serve` and the Haraka plugin's
 * own `[http] listen` (server.ts), and Haraka's own web server (http.ini,
 * express) where plugins/metrics.ts mounts it — so each answers the same.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { describeError } from '../errors'
import type { Runtime } from '../runtime'
import { healthOf } from './health'
import {
  createRecipientsHandler,
  DOMAINS_PATH,
  RECIPIENTS_PREFIX,
  type RecipientsHandler,
} from './recipients'
import { send, sendJson, sendText } from './respond'

export { sendJson, sendText } from './respond'

/** Answers a WKD request and returns true, or returns false when the path is not a WKD path. */
export type WkdHandler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>

/** Where /metrics comes from: a prom-client Registry, or a cluster aggregate of several. */
export interface MetricsSource {
  readonly contentType: string
  metrics(): Promise<string>
}

export interface RouteOptions {
  wkdHandler?: WkdHandler
  /**
   * GET /v1/recipients/<address> and /v1/domains (core/http/recipients.ts).
   * Default: a handler of its own (its own rate-limit buckets) when
   * `[http] recipients_api` is on; null = none (404).
   */
  recipients?: RecipientsHandler | null
  /** Default: the runtime's registry. */
  metrics?: MetricsSource
}

export type RequestRouter = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>

export function createRouter(rt: Runtime, opts: RouteOptions = {}): RequestRouter {
  const source = opts.metrics ?? rt.metrics.registry
  const recipients = recipientsFor(rt, opts)
  return async (req, res) => {
    const path = pathOf(req)
    if (path === '/metrics') await serveMetrics(rt, source, res)
    else if (path === '/healthz') serveHealth(rt, res)
    else if (recipients && (path.startsWith(RECIPIENTS_PREFIX) || path === DOMAINS_PATH))
      await recipients(req, res, path)
    else if (opts.wkdHandler) return opts.wkdHandler(req, res)
    else return false
    return true
  }
}

/** The recipients handler a router with these options uses, if any. */
export function recipientsFor(rt: Runtime, opts: RouteOptions): RecipientsHandler | undefined {
  if (opts.recipients !== undefined) return opts.recipients ?? undefined
  return rt.config.http.recipients_api ? createRecipientsHandler(rt) : undefined
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
