import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as net from 'node:net'
import { startHttpService, type HttpService } from '../../../../core/http/server'
import { healthOf } from '../../../../core/http/health'
import { logDecision } from '../../../../core/decision-log'
import { ConfigError } from '../../../../core/errors'
import type { Runtime } from '../../../../core/runtime'
import { request, testRuntime } from './helpers'

async function withService(
  fn: (svc: HttpService, rt: Runtime, lines: string[]) => Promise<void>,
  opts: Parameters<typeof startHttpService>[1] = { wkdHandler: null },
): Promise<void> {
  const { rt, lines } = testRuntime()
  const svc = await startHttpService(rt, opts)
  try {
    await fn(svc, rt, lines)
  } finally {
    await svc.close(100)
  }
}

test('/metrics serves the runtime registry in the Prometheus text format', () =>
  withService(async (svc, rt) => {
    logDecision(rt, { adapter: 'milter', verdict: 'reject', reason: 'tagged_plaintext' })
    const r = await request(svc.port, '/metrics')
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], rt.metrics.registry.contentType)
    assert.match(r.body, /^# HELP linksec_messages_total /m)
    assert.match(r.body, /^linksec_messages_total\{adapter="milter",verdict="reject"\} 1$/m)
    assert.match(r.body, /^linksec_process_cpu_seconds_total /m, 'process metrics are included')
    assert.equal(r.headers['cache-control'], 'no-store')
  }))

test('a query string does not change the route', () =>
  withService(async (svc) => {
    assert.equal((await request(svc.port, '/metrics?x=1')).status, 200)
  }))

test('HEAD /metrics answers the headers only', () =>
  withService(async (svc) => {
    const r = await request(svc.port, '/metrics', { method: 'HEAD' })
    assert.equal(r.status, 200)
    assert.equal(r.body, '')
    assert.ok(Number(r.headers['content-length']) > 0)
  }))

test('/healthz lists the listeners and turns 503 when shutting down', () =>
  withService(async (svc, rt) => {
    healthOf(rt).add({ name: 'milter', address: 'inet:127.0.0.1:8891' })
    const ok = await request(svc.port, '/healthz')
    assert.equal(ok.status, 200)
    const report = JSON.parse(ok.body)
    assert.equal(report.status, 'ok')
    assert.deepEqual(report.listeners.map((l: { name: string }) => l.name).sort(), ['http', 'milter'])
    assert.ok(report.listeners.some((l: { address: string }) => l.address === `127.0.0.1:${svc.port}`))
    healthOf(rt).beginShutdown()
    const down = await request(svc.port, '/healthz')
    assert.equal(down.status, 503)
    assert.equal(JSON.parse(down.body).status, 'shutting_down')
  }))

test('methods other than GET and HEAD get 405 with Allow', () =>
  withService(async (svc) => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await request(svc.port, '/metrics', { method })
      assert.equal(r.status, 405, method)
      assert.equal(r.headers.allow, 'GET, HEAD')
    }
  }))

test('unknown paths get 404 when there is no WKD handler', () =>
  withService(async (svc) => {
    const r = await request(svc.port, '/.well-known/openpgpkey/policy')
    assert.equal(r.status, 404)
    assert.match(r.body, /\/metrics/)
  }))

test('other paths go to the WKD handler; false from it means 404', async () => {
  const seen: string[] = []
  await withService(
    async (svc) => {
      const hit = await request(svc.port, '/.well-known/openpgpkey/policy')
      assert.equal(hit.status, 200)
      assert.equal(hit.body, 'wkd')
      assert.equal((await request(svc.port, '/elsewhere')).status, 404)
      assert.deepEqual(seen, ['/.well-known/openpgpkey/policy', '/elsewhere'])
    },
    {
      wkdHandler: (req, res) => {
        seen.push(req.url ?? '')
        if (!req.url?.startsWith('/.well-known/')) return false
        res.end('wkd')
        return true
      },
    },
  )
})

test('a handler that throws gets 500 and the listener keeps serving', () =>
  withService(
    async (svc, _rt, lines) => {
      assert.equal((await request(svc.port, '/x')).status, 500)
      assert.equal((await request(svc.port, '/healthz')).status, 200)
      assert.ok(lines.some((l) => l.includes('http request failed') && l.includes('boom')))
    },
    {
      wkdHandler: () => {
        throw new Error('boom')
      },
    },
  ))

test('a failing metrics collection gets 500, not a crash', () =>
  withService(
    async (svc) => {
      const r = await request(svc.port, '/metrics')
      assert.equal(r.status, 500)
    },
    {
      wkdHandler: null,
      metrics: { contentType: 'text/plain', metrics: () => Promise.reject(new Error('collect')) },
    },
  ))

test('oversized request headers get 431', () =>
  withService(async (svc) => {
    const r = await request(svc.port, '/metrics', { headers: { 'X-Big': 'a'.repeat(16 * 1024) } })
    assert.equal(r.status, 431)
  }))

test('an idle connection is closed by the server', async () => {
  const { rt } = testRuntime()
  const svc = await startHttpService(rt, {
    wkdHandler: null,
    limits: { idleTimeoutMs: 100, headersTimeoutMs: 100 },
  })
  try {
    const sock = net.connect(svc.port, '127.0.0.1')
    sock.on('error', () => {})
    sock.write('GET /metrics HTTP/1.1\r\n') // never finishes its headers
    await new Promise<void>((resolve) => sock.once('close', () => resolve()))
    assert.equal(sock.destroyed, true)
  } finally {
    await svc.close(100)
  }
})

test('close() ends even while a client holds a connection open', async () => {
  const { rt } = testRuntime()
  const svc = await startHttpService(rt, { wkdHandler: null })
  const sock = net.connect(svc.port, '127.0.0.1')
  sock.on('error', () => {})
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()))
  sock.write('GET /metrics HTTP/1.1\r\nHost: x\r\n') // half a request
  await svc.close(50)
  await new Promise<void>((resolve) => (sock.destroyed ? resolve() : sock.once('close', () => resolve())))
  assert.equal(healthOf(rt).shuttingDown, true)
  await assert.rejects(request(svc.port, '/healthz'), /ECONNREFUSED/)
})

test('a listen value that is not HOST:PORT is a ConfigError naming the key', async () => {
  const { rt } = testRuntime()
  await assert.rejects(startHttpService(rt, { listen: 'not a host', wkdHandler: null }), (e: unknown) => {
    assert.ok(e instanceof ConfigError)
    assert.match(e.message, /http\.listen/)
    return true
  })
})

test('a port already in use rejects start-up', () =>
  withService(async (svc) => {
    const { rt } = testRuntime()
    await assert.rejects(
      startHttpService(rt, { listen: `127.0.0.1:${svc.port}`, wkdHandler: null }),
      /EADDRINUSE/,
    )
  }))

test('slowloris: 300 half-open requests do not lock /healthz out (the slowest are evicted)', async (t) => {
  const { rt } = testRuntime()
  const svc = await startHttpService(rt, { wkdHandler: null, limits: { maxConnections: 32 } })
  const sockets: net.Socket[] = []
  let evicted = 0
  let worst = 0
  try {
    for (let i = 0; i < 300; i++) {
      const s = net.connect(svc.port, '127.0.0.1')
      s.on('error', () => {})
      s.on('close', () => evicted++)
      s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ')
      sockets.push(s)
      if (i % 50 === 49) {
        const started = process.hrtime.bigint()
        assert.equal((await request(svc.port, '/healthz')).status, 200)
        worst = Math.max(worst, Number(process.hrtime.bigint() - started) / 1e6)
      }
    }
    for (const path of ['/healthz', '/metrics']) assert.equal((await request(svc.port, path)).status, 200)
    assert.ok(evicted >= 300 - 32, `${evicted} half-open connections evicted`)
    t.diagnostic(`worst /healthz latency under 300 half-open requests: ${worst.toFixed(1)} ms`)
  } finally {
    for (const s of sockets) s.destroy()
    await svc.close(0)
  }
})
