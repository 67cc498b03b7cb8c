/**
 * linksec's HTTP paths for the Haraka adapter — /metrics, /healthz, WKD,
 * /v1/recipients/<address> and /v1/domains, one table (core/http/routes.ts)
 * with the same access rule and rate limit as `linksec serve` — counted into
 * the plugin's registry (docs/architecture.md §7). Where it listens:
 *
 * - One process (smtp.ini `nodes=` empty): on Haraka's own HTTP server when it
 *   runs one (http.ini `listen=` and the `express` package installed; mounted
 *   at init_http), else on linksec's own listener at `[http] listen`.
 * - Cluster (`nodes=N`): every worker counts into its own registry, and a
 *   scrape answered by whichever worker the kernel picks would jump between
 *   their counts. So only the master listens, on `[http] listen`, and answers
 *   each scrape with the sum over all workers (prom-client's
 *   AggregatorRegistry asks every worker over the cluster IPC channel). The
 *   workers do not mount /metrics on Haraka's HTTP server.
 *
 * plugins/linksec.ts calls `registerMetricsEndpoint(this, () => rt)` once in
 * register(), and `closeMetricsEndpoint(this)` from shutdown().
 */
import * as path from 'node:path'
import { AggregatorRegistry } from 'prom-client'
import { describeError } from '../core/errors'
import { createRouter, type MetricsSource, type RequestRouter } from '../core/http/routes'
import { startHttpService, type HttpService } from '../core/http/server'
import { loadWkdHandler } from '../core/http/wkd-loader'
import type { Runtime } from '../core/runtime'
import type { HarakaPlugin, Next } from './haraka'

/** The parts of Haraka's Server object (server.js) these hooks read. */
export interface HarakaServer {
  /** Set (to node:cluster) only when smtp.ini has `nodes=`. */
  cluster?: { isMaster?: boolean; isPrimary?: boolean } | null
  http?: { cfg?: { listen?: string }; app?: ExpressApp }
}

/** Express's app.use, the one call we make on Haraka's HTTP server. */
export interface ExpressApp {
  use(handler: (req: never, res: never, next: (err?: unknown) => void) => void): unknown
}

export interface EndpointOptions {
  /** How long to wait for init_http before deciding Haraka's HTTP server did not start. */
  initHttpWaitMs?: number
  /** Module resolution as Haraka's server.js does it (tests replace it). */
  resolve?: (id: string) => string
}

interface EndpointState {
  opts: Required<EndpointOptions>
  own?: HttpService
  mounted: boolean
  fallback?: NodeJS.Timeout
}

const STATE = Symbol('linksec metrics endpoint')
type WithState = HarakaPlugin & { [STATE]?: EndpointState }

function state(plugin: HarakaPlugin): EndpointState {
  const p = plugin as WithState
  p[STATE] ??= { mounted: false, opts: { initHttpWaitMs: 10_000, resolve: resolveFromHaraka } }
  return p[STATE]
}

/** Registers init_master, init_child and init_http hooks that serve the plugin's metrics. */
export function registerMetricsEndpoint(
  plugin: HarakaPlugin,
  runtime: () => Runtime,
  opts: EndpointOptions = {},
): void {
  Object.assign(state(plugin).opts, opts)
  plugin.linksec_metrics_init_master = (next: Next, server: HarakaServer) =>
    void onInitMaster(plugin, runtime(), server).finally(() => next())
  plugin.linksec_metrics_init_child = (next: Next) => {
    onInitChild(runtime())
    next()
  }
  plugin.linksec_metrics_init_http = (next: Next, server: HarakaServer) => {
    onInitHttp(plugin, runtime(), server)
    next()
  }
  plugin.register_hook('init_master', 'linksec_metrics_init_master')
  plugin.register_hook('init_child', 'linksec_metrics_init_child')
  plugin.register_hook('init_http', 'linksec_metrics_init_http')
}

/** Closes linksec's own listener, if this process runs one. */
export async function closeMetricsEndpoint(plugin: HarakaPlugin): Promise<void> {
  const s = state(plugin)
  clearTimeout(s.fallback)
  const own = s.own
  s.own = undefined
  await own?.close()
}

async function onInitMaster(plugin: HarakaPlugin, rt: Runtime, server: HarakaServer): Promise<void> {
  if (!rt.config.http.enabled) return
  if (server.cluster) return startOwn(plugin, rt, clusterSource(), 'cluster master, sums all workers')
  if (harakaWillServeHttp(server, state(plugin).opts.resolve)) return waitForInitHttp(plugin, rt)
  await startOwn(plugin, rt, undefined, 'Haraka runs no HTTP server')
}

/** Workers answer the master's metric requests from the plugin's registry. */
function onInitChild(rt: Runtime): void {
  // prom-client installs the worker's IPC listener only when an
  // AggregatorRegistry is constructed, not on require.
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([rt.metrics.registry])
}

function onInitHttp(plugin: HarakaPlugin, rt: Runtime, server: HarakaServer): void {
  const s = state(plugin)
  // In a cluster the master already serves the sum; a worker's numbers alone would mislead.
  if (!rt.config.http.enabled || server.cluster || s.own || s.mounted || !server.http?.app) return
  clearTimeout(s.fallback)
  server.http.app.use(expressMiddleware(rt, createRouter(rt, { wkdHandler: loadWkdHandler(rt) })))
  s.mounted = true
  rt.log.info("linksec HTTP paths mounted on Haraka's HTTP server", {
    listen: server.http.cfg?.listen,
    recipients_api: rt.config.http.recipients_api,
  })
}

/** http.ini asks for a listener and Haraka will find express (it logs an error and skips init_http otherwise). */
export function harakaWillServeHttp(
  server: HarakaServer,
  resolve: (id: string) => string = resolveFromHaraka,
): boolean {
  if (!server.http?.cfg?.listen) return false
  try {
    resolve('express')
    return true
  } catch {
    return false
  }
}

function resolveFromHaraka(id: string): string {
  const from = require.main?.filename ? [path.dirname(require.main.filename)] : []
  return require.resolve(id, { paths: [...from, process.cwd()] })
}

/** If init_http never comes (express failed to load after all), serve on our own listener. */
function waitForInitHttp(plugin: HarakaPlugin, rt: Runtime): void {
  const s = state(plugin)
  s.fallback = setTimeout(() => {
    if (!s.mounted) void startOwn(plugin, rt, undefined, "Haraka's HTTP server did not start")
  }, s.opts.initHttpWaitMs)
  s.fallback.unref()
}

/** Starts linksec's listener on [http] listen; a failure is logged, never stops mail. */
async function startOwn(plugin: HarakaPlugin, rt: Runtime, metrics: MetricsSource | undefined, why: string) {
  const s = state(plugin)
  if (s.own) return
  try {
    s.own = await startHttpService(rt, { metrics })
    rt.log.info('linksec metrics listener started', { address: s.own.address, why })
  } catch (e) {
    rt.log.error('linksec metrics listener NOT started; mail is not affected', {
      listen: rt.config.http.listen,
      error: describeError(e),
      fix: 'set [http] listen in linksec.ini to a free HOST:PORT, or [http] enabled = false',
    })
  }
}

/** The sum over all cluster workers' registries. */
function clusterSource(aggregator = new AggregatorRegistry()): MetricsSource {
  return { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() }
}

type NodeReq = Parameters<RequestRouter>[0]
type NodeRes = Parameters<RequestRouter>[1]

/** Our paths on GET/HEAD; everything else goes on to Haraka's other handlers. */
function expressMiddleware(rt: Runtime, route: RequestRouter) {
  return (req: NodeReq, res: NodeRes, next: (err?: unknown) => void): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next()
    route(req, res).then(
      (handled) => (handled ? undefined : next()),
      (e: unknown) => {
        rt.log.error('linksec http request failed', { path: req.url, error: describeError(e) })
        next(e)
      },
    )
  }
}
