import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { test } from 'node:test'
import { createRateLimiter } from '../../../../core/http/rate-limit'
import { createRecipientsHandler } from '../../../../core/http/recipients'
import { badAddressReason } from '../../../../core/send/recipient'
import { adviceFor } from '../../../../core/send/recipient'
import type { DomainPolicy } from '../../../../core/policy'
import { learnedStoreFor } from '../../../../core/policy'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime } from '../../../../core/runtime'
import { testRuntime } from './helpers'

test('token bucket: burst at once, then one per refill interval, Retry-After in whole seconds', () => {
  let now = 0
  const l = createRateLimiter({ perMinute: 6, burst: 2, now: () => now })
  assert.equal(l.take('a'), 0)
  assert.equal(l.take('a'), 0)
  assert.equal(l.take('a'), 10)
  assert.equal(l.take('b'), 0, 'another client has its own bucket')
  now = 9_000
  assert.equal(l.take('a'), 1)
  now = 10_000
  assert.equal(l.take('a'), 0)
})

test('token bucket keeps at most maxClients buckets', () => {
  const l = createRateLimiter({ perMinute: 1, burst: 1, now: () => 0, maxClients: 2 })
  l.take('a')
  l.take('b')
  l.take('c') // drops a
  assert.equal(l.take('a'), 0, 'a was forgotten and starts full')
  assert.ok(l.take('c') > 0)
})

function fakeExchange(remoteAddress: string) {
  const out = { status: 0, headers: {} as Record<string, unknown>, body: '' }
  const res = {
    set statusCode(s: number) {
      out.status = s
    },
    setHeader: (k: string, v: unknown) => (out.headers[k.toLowerCase()] = v),
    end: (b: string) => (out.body = b),
  } as unknown as ServerResponse
  const req = { socket: { remoteAddress }, url: '/v1/recipients/x' } as unknown as IncomingMessage
  return { req, res, out }
}

test('a client outside loopback and recipients_allow gets 403 naming the key; a listed network is served', async () => {
  const { rt } = testRuntime({ http: { recipients_allow: ['192.0.2.0/24'] } })
  const h = createRecipientsHandler(rt)
  const far = fakeExchange('198.51.100.7')
  await h(far.req, far.res, '/v1/recipients/x')
  assert.equal(far.out.status, 403)
  assert.match(far.out.body, /198\.51\.100\.7 .*\[http\] recipients_allow/)
  const near = fakeExchange('::ffff:192.0.2.9')
  await h(near.req, near.res, '/v1/recipients/x')
  assert.equal(near.out.status, 400, 'allowed, then refused for the bad address')
  const v6 = fakeExchange('::1')
  await h(v6.req, v6.res, '/v1/recipients/nope')
  assert.equal(v6.out.status, 400)
})

test('GET /v1/domains: what this process learned, live entries only, under the same access rule', async () => {
  let now = Date.parse('2026-12-04T12:00:00Z')
  const base = testRuntime().rt
  const rt = createRuntime(base.config, { log: silentLogger, metrics: createMetrics(), now: () => now })
  learnedStoreFor(rt).learn('peer.test', { level: 3, ttlSeconds: 60 }, 'ehlo')
  const h = createRecipientsHandler(rt)
  const far = fakeExchange('198.51.100.7')
  await h(far.req, far.res, '/v1/domains')
  assert.equal(far.out.status, 403)
  const near = fakeExchange('127.0.0.1')
  await h(near.req, near.res, '/v1/domains')
  assert.equal(near.out.status, 200)
  const doc = JSON.parse(near.out.body) as { policies: Record<string, Record<string, unknown>> }
  assert.deepEqual(doc.policies['peer.test'], {
    mode: 'none',
    mxs: [],
    level: 3,
    'linksec-source': 'learned (ehlo)',
    'linksec-learned': '2026-12-04T12:00:00.000Z',
    'linksec-expires': '2026-12-04T12:01:00.000Z',
    'linksec-age-seconds': 0,
  })
  now += 61_000
  const later = fakeExchange('127.0.0.1')
  await h(later.req, later.res, '/v1/domains')
  assert.deepEqual(
    (JSON.parse(later.out.body) as typeof doc).policies,
    {},
    'an expired declaration is not listed',
  )
})

test('bad address reasons', () => {
  assert.equal(badAddressReason('a@example.org'), undefined)
  assert.match(badAddressReason('x'.repeat(255))!, /254 octets/)
  assert.match(badAddressReason('a@é.test')!, /A-label/)
  assert.match(badAddressReason('a\u0001@x.test')!, /\\x01/)
})

test('advice: a key means encrypt; level 3 with TLS required means tagged; a failure means retry', () => {
  const p = (level: number, tlsMode: string, temporaryFailure = false) =>
    ({ level, tlsMode, temporaryFailure }) as unknown as DomainPolicy
  const none = { published: false, outcome: 'notfound' as const, reason: '' }
  assert.equal(adviceFor(p(0, 'none'), { ...none, published: true, outcome: 'found' }), 'encrypt')
  assert.equal(adviceFor(p(3, 'encrypt'), none), 'tagged')
  assert.equal(adviceFor(p(3, 'may'), none), 'notice')
  assert.equal(adviceFor(p(0, 'none', true), none), 'retry')
  assert.equal(adviceFor(p(0, 'none'), { ...none, outcome: 'temperror' }), 'retry')
  assert.equal(adviceFor(p(0, 'none'), none), 'notice')
})
