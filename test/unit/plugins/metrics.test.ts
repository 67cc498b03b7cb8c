import { test } from 'node:test'
import assert from 'node:assert/strict'
import cluster from 'node:cluster'
import * as http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { logDecision } from '../../../core/decision-log'
import { healthOf } from '../../../core/http/health'
import type { Runtime } from '../../../core/runtime'
import type { HarakaPlugin, Next } from '../../../plugins/haraka'
import {
  closeMetricsEndpoint,
  harakaWillServeHttp,
  registerMetricsEndpoint,
  type EndpointOptions,
  type ExpressApp,
  type HarakaServer,
} from '../../../plugins/metrics'
import { request, testRuntime } from '../core/http/helpers'

type Hook = (next: Next, server: HarakaServer) => void

function fakePlugin(): HarakaPlugin & { hooks: string[] } {
  const hooks: string[] = []
  const noop = () => {}
  return {
    name: 'linksec',
    hooks,
    config: { get: () => ({}) },
    register_hook: (hook: string) => void hooks.push(hook),
    logdebug: noop,
    loginfo: noop,
    logwarn: noop,
    logerror: noop,
    logcrit: noop,
  }
}

function runHook(plugin: HarakaPlugin, hook: string, server: HarakaServer): Promise<void> {
  return new Promise((resolve) => (plugin[`linksec_metrics_${hook}`] as Hook)(() => resolve(), server))
}

/** The port linksec's own listener took ([http] listen is 127.0.0.1:0 in tests). */
function ownPort(rt: Runtime): number | undefined {
  const l = healthOf(rt)
    .report()
    .listeners.find((x) => x.name === 'http')
  return l ? Number(l.address.split(':').pop()) : undefined
}

async function setup(opts: EndpointOptions = {}) {
  const { rt, lines } = testRuntime()
  const plugin = fakePlugin()
  registerMetricsEndpoint(plugin, () => rt, opts)
  return { rt, lines, plugin }
}

test('registers the init_master, init_child and init_http hooks', async () => {
  const { plugin } = await setup()
  assert.deepEqual(plugin.hooks.sort(), ['init_child', 'init_http', 'init_master'])
})

test('one process without an HTTP server: linksec listens on [http] listen', async () => {
  const { rt, plugin } = await setup()
  try {
    await runHook(plugin, 'init_master', { http: { cfg: {} } })
    const port = ownPort(rt)
    assert.ok(port, 'own listener started')
    logDecision(rt, { adapter: 'haraka', verdict: 'accept', reason: 'ok' })
    const r = await request(port, '/metrics')
    assert.equal(r.status, 200)
    assert.match(r.body, /^linksec_messages_total\{adapter="haraka",verdict="accept"\} 1$/m)
  } finally {
    await closeMetricsEndpoint(plugin)
  }
})

/** A stand-in for Haraka's express app: runs the mounted middlewares in order, then 404. */
function fakeExpress(): { app: ExpressApp; server: http.Server } {
  const stack: ((req: unknown, res: unknown, next: (e?: unknown) => void) => void)[] = []
  const server = http.createServer((req, res) => {
    const run = (i: number, err?: unknown): void => {
      if (err || i >= stack.length) {
        res.statusCode = err ? 500 : 404
        return void res.end(err ? 'express error' : 'haraka 404')
      }
      stack[i]!(req, res, (e) => run(i + 1, e))
    }
    run(0)
  })
  return { app: { use: (h) => void stack.push(h as (typeof stack)[number]) }, server }
}

test("one process with Haraka's HTTP server: mounted there, other paths pass through", async () => {
  const { rt, plugin } = await setup({ resolve: () => '/fake/express' })
  const { app, server } = fakeExpress()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  try {
    const haraka: HarakaServer = { http: { cfg: { listen: `127.0.0.1:${port}` }, app } }
    await runHook(plugin, 'init_master', haraka)
    assert.equal(ownPort(rt), undefined, 'no own listener')
    await runHook(plugin, 'init_http', haraka)
    logDecision(rt, { adapter: 'haraka', verdict: 'reject' })
    const m = await request(port, '/metrics')
    assert.equal(m.status, 200)
    assert.match(m.body, /verdict="reject"\} 1$/m)
    assert.equal((await request(port, '/healthz')).status, 200)
    const other = await request(port, '/index.html')
    assert.equal(other.body, 'haraka 404', "other paths reach Haraka's handlers")
    const post = await request(port, '/metrics', { method: 'POST' })
    assert.equal(post.body, 'haraka 404', 'POST is not ours')
  } finally {
    await closeMetricsEndpoint(plugin)
    await new Promise((r) => server.close(r))
  }
})

test('http.ini listen but init_http never comes: falls back to the own listener', async () => {
  const { rt, lines, plugin } = await setup({ resolve: () => '/fake/express', initHttpWaitMs: 20 })
  try {
    await runHook(plugin, 'init_master', { http: { cfg: { listen: '127.0.0.1:1' } } })
    for (let i = 0; i < 200 && !ownPort(rt); i++) await new Promise((r) => setTimeout(r, 10))
    const port = ownPort(rt)
    assert.ok(port, 'own listener started after the wait')
    assert.equal((await request(port, '/healthz')).status, 200)
    assert.ok(lines.some((l) => l.includes('did not start')))
  } finally {
    await closeMetricsEndpoint(plugin)
  }
})

test('express missing: http.ini listen alone does not count as an HTTP server', () => {
  const missing = () => {
    throw new Error('Cannot find module')
  }
  assert.equal(harakaWillServeHttp({ http: { cfg: { listen: '[::]:80' } } }, missing), false)
  assert.equal(
    harakaWillServeHttp({ http: { cfg: { listen: '[::]:80' } } }, () => 'x'),
    true,
  )
  assert.equal(
    harakaWillServeHttp({ http: { cfg: {} } }, () => 'x'),
    false,
  )
})

test('a busy [http] listen port is logged and never stops Haraka', async () => {
  const blocker = http.createServer()
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
  const port = (blocker.address() as { port: number }).port
  const { rt, lines } = testRuntime({ http: { listen: `127.0.0.1:${port}` } })
  const plugin = fakePlugin()
  registerMetricsEndpoint(plugin, () => rt)
  try {
    await runHook(plugin, 'init_master', {})
    assert.ok(lines.some((l) => l.includes('NOT started') && l.includes('EADDRINUSE')))
  } finally {
    await closeMetricsEndpoint(plugin)
    await new Promise((r) => blocker.close(r))
  }
})

test('[http] enabled = false: no listener and nothing mounted', async () => {
  const { rt } = testRuntime({ http: { enabled: false } })
  const plugin = fakePlugin()
  registerMetricsEndpoint(plugin, () => rt)
  const { app } = fakeExpress()
  let mounted = 0
  const counting: ExpressApp = { use: (h) => (mounted++, app.use(h)) }
  await runHook(plugin, 'init_master', {})
  await runHook(plugin, 'init_http', { http: { cfg: { listen: 'x' }, app: counting } })
  assert.equal(ownPort(rt), undefined)
  assert.equal(mounted, 0)
})

const WORKER = `
const dist = process.env.LINKSEC_DIST
const { registerMetricsEndpoint } = require(dist + '/plugins/metrics.js')
const { createRuntime } = require(dist + '/core/runtime.js')
const { defaultConfig } = require(dist + '/core/config/index.js')
const { silentLogger } = require(dist + '/core/log.js')
const rt = createRuntime(defaultConfig('/nonexistent'), { log: silentLogger })
const plugin = { register_hook() {} }
registerMetricsEndpoint(plugin, () => rt)
plugin.linksec_metrics_init_child(() => {
  rt.metrics.messages.inc({ adapter: 'haraka', verdict: 'accept' }, Number(process.env.COUNT))
  process.send({ ready: true })
})
`

test('cluster: only the master listens, and /metrics is the sum over the workers', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'linksec-cluster-'))
  const workerFile = path.join(dir, 'worker.js')
  writeFileSync(workerFile, WORKER)
  const { rt, plugin } = await setup()
  cluster.setupPrimary({ exec: workerFile, execArgv: [], silent: true })
  const dist = path.resolve(__dirname, '../../..')
  const workers = [2, 5].map((n) => cluster.fork({ LINKSEC_DIST: dist, COUNT: String(n) }))
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('worker not ready in 20 s')), 20_000)
            w.once('message', () => (clearTimeout(timer), resolve()))
            w.once('exit', (code) => (clearTimeout(timer), reject(new Error(`worker exited ${code}`))))
          }),
      ),
    )
    await runHook(plugin, 'init_master', { cluster: { isMaster: true } })
    const port = ownPort(rt)
    assert.ok(port)
    const r = await request(port, '/metrics')
    assert.equal(r.status, 200)
    assert.match(r.body, /^linksec_messages_total\{adapter="haraka",verdict="accept"\} 7$/m)
    t.diagnostic('2 workers counted 2 and 5; the master answered 7')
  } finally {
    for (const w of workers) w.process.kill()
    await closeMetricsEndpoint(plugin)
    rmSync(dir, { recursive: true, force: true })
  }
})
