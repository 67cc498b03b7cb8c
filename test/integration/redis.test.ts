/**
 * The fleet cache (docs/architecture.md §6.6) with a real redis-server on loopback: a
 * declaration learned by one resolver instance is seen by a second one, and
 * a Redis that goes away costs nothing but the sharing.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../core/config'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { policyResolverFor } from '../../core/policy'
import { createRedisSharedCache } from '../../core/redis'
import { createRuntime, type Runtime } from '../../core/runtime'
import { freePort } from '../helpers/ports'
import { startRedis, type TestRedis } from '../helpers/redis'
import { needTools } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

let world: World
let redis: TestRedis | undefined
let redisUrl = ''
const runtimes: Runtime[] = []

before(async () => {
  world = await startWorld()
})

after(async () => {
  await Promise.all(runtimes.map((rt) => rt.engine.close()))
  await redis?.stop()
  await world.close()
})

async function startRedisOnce(): Promise<void> {
  redis = await startRedis()
  redisUrl = redis.url
}

function instance(): Runtime {
  const dir = world.configIni({ redis: { url: redisUrl, prefix: 'linksec-test:' } })
  const rt = createRuntime(loadConfig(dir), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
  })
  runtimes.push(rt)
  return rt
}

test('a declaration learned by one instance is seen by another', async (t) => {
  if (!needTools(t, { 'redis-server': 'redis-server', 'redis-cli': 'redis-tools' })) return
  await startRedisOnce()
  const a = policyResolverFor(instance())
  const b = policyResolverFor(instance())
  assert.equal(
    a.learnFromEhlo('peer.example.test', ['250-mx.peer.example.test', '250 LINKSEC 4 ttl=600']),
    'stored',
  )
  // The write to Redis is best effort and asynchronous; give it a moment.
  let seen = 0
  for (let i = 0; i < 50 && seen !== 4; i++) {
    await new Promise((r) => setTimeout(r, 50))
    seen = (await policyResolverFor(instance()).resolve('peer.example.test')).level
  }
  assert.equal(seen, 4)
  const p = await b.resolve('peer.example.test')
  assert.equal(p.level, 4)
  assert.equal(p.decidedBy, 'learned')
  assert.match(p.sources.find((s) => s.source === 'learned')!.reason, /EHLO declared level 4/)
  assert.equal((await b.resolve('other.example.test')).level, 0)
})

test('with Redis unreachable, lookups still answer from this machine', async (t) => {
  if (!needTools(t, { 'redis-server': 'redis-server' })) return
  const port = await freePort()
  const cache = createRedisSharedCache({
    url: `redis://127.0.0.1:${port}`,
    prefix: 'x:',
    timeoutMs: 300,
    log: silentLogger,
  })
  t.after(() => cache.close())
  await assert.rejects(cache.get('k'))
  const dir = world.configIni({ redis: { url: `redis://127.0.0.1:${port}` } })
  const rt = createRuntime(loadConfig(dir), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
  })
  runtimes.push(rt)
  const r = policyResolverFor(rt)
  r.learnDeclaration('local.example.test', { level: 3, ttlSeconds: 60 }, 'ehlo')
  assert.equal((await r.resolve('local.example.test')).level, 3)
  assert.equal((await r.resolve('unknown.example.test')).level, 0)
})
