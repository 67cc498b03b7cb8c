/**
 * The fleet cache (docs/architecture.md §6.6) with a real redis-server on loopback: a
 * declaration learned by one resolver instance is seen by a second one, and
 * a Redis that goes away costs nothing but the sharing.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as path from 'node:path'
import { loadConfig } from '../../core/config'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { policyResolverFor } from '../../core/policy'
import { createRedisSharedCache } from '../../core/redis'
import { createRuntime, type Runtime } from '../../core/runtime'
import { freePort } from '../helpers/ports'
import { needTools } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

const PEERS = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'peers')

let world: World
let redisDir: string | undefined
let redisUrl = ''
const runtimes: Runtime[] = []

function sh(
  script: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(PEERS, script), ...args], {
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/usr/local/sbin`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
  })
}

before(async () => {
  world = await startWorld()
})

after(async () => {
  await Promise.all(runtimes.map((rt) => rt.engine.close()))
  if (redisDir) await sh('peer-down.sh', {}, [redisDir])
  await world.close()
})

async function startRedis(): Promise<void> {
  const port = await freePort()
  const r = await sh('redis-up.sh', { PORT: String(port) })
  if (r.code !== 0) throw new Error(`redis-up.sh failed: ${r.err}`)
  redisDir = /export REDIS_DIR='([^']+)'/.exec(r.out)![1]
  redisUrl = /export REDIS_URL='([^']+)'/.exec(r.out)![1]!
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
  await startRedis()
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
