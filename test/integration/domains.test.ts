/**
 * `linksec domains import|export` as an operator runs them: a list file and
 * an https URL from the test world (test/helpers/world.ts: DNS and HTTPS on
 * loopback, the test CA) merged into [policy] domains_file, which
 * `linksec check` then reads; bad, expired and hostile lists refused with
 * the entry named and nothing written; the key fetcher's SSRF rules on the
 * URL; an export of the static list and of what the fleet learned in a real
 * Redis (test/helpers/redis.ts), imported again by a second server.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startHttpService } from '../../core/http/server'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { policyResolverFor } from '../../core/policy'
import { createRuntime } from '../../core/runtime'
import { LearnedStore } from '../../core/policy/learned'
import { createRedisSharedCache } from '../../core/redis'
import { startRedis, type TestRedis } from '../helpers/redis'
import { needTools } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')

function linksec(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => resolve({ code, out, err }))
  })
}

const LIST = {
  timestamp: '2026-12-01T00:00:00Z',
  expires: '2099-01-01T00:00:00Z',
  author: 'test community',
  policies: {
    'bank.test': { mode: 'enforce', mxs: ['.bank.test'], level: 4 },
    'shop.test': { mode: 'testing', mxs: [], level: 2 },
  },
}

describe('linksec domains', () => {
  let world: World
  let redis: TestRedis | undefined

  before(async () => {
    world = await startWorld({
      hosts: ['lists.test'],
      routes: {
        'lists.test/list.json': { body: JSON.stringify(LIST) },
        'lists.test/moved.json': { status: 302, headers: { location: 'https://other.test/list.json' } },
        'lists.test/huge.json': { fault: 'oversized', bytes: 17 * 1024 * 1024 },
      },
    })
  })
  after(async () => {
    await redis?.stop()
    await world.close()
  })

  const listFile = (dir: string) => path.join(dir, 'linksec.domains.json')
  const write = (dir: string, name: string, doc: unknown) => {
    const f = path.join(dir, name)
    fs.writeFileSync(f, typeof doc === 'string' ? doc : JSON.stringify(doc))
    return f
  }

  it('imports a file into the static list that linksec check reads; a second import is unchanged', async () => {
    const dir = world.configIni({ policy: { dane: false } })
    const file = write(dir, 'list.json', LIST)
    const r = await linksec(['domains', 'import', file, '--config', dir])
    assert.equal(r.code, 0, r.err)
    assert.match(r.out, /^bank\.test: added \(mode enforce, level 4, mxs \.bank\.test\)$/m)
    assert.match(r.out, /2 added, 0 updated, 0 weakened, 0 kept stricter, 0 unchanged, 0 skipped/)
    const written = JSON.parse(fs.readFileSync(listFile(dir), 'utf8')) as {
      policies: Record<string, Record<string, unknown>>
    }
    assert.equal(written.policies['bank.test']!['linksec-source'], file)
    const check = await linksec(['check', 'bank.test', '--json', '--config', dir])
    const policy = JSON.parse(check.out) as { level: number; sources: { source: string; outcome: string }[] }
    assert.equal(policy.level, 4)
    assert.equal(policy.sources.find((s) => s.source === 'static')?.outcome, 'found')
    const again = await linksec(['domains', 'import', file, '--config', dir])
    assert.match(again.out, /0 added, .* 2 unchanged, 0 skipped; .* not changed/)
  })

  it('keeps a stricter entry and says so; --allow-weaker takes the weaker one, saying it did', async () => {
    const dir = world.configIni(
      {},
      {
        'linksec.domains.json': JSON.stringify({
          policies: { 'bank.test': { mode: 'enforce', mxs: ['.bank.test'], level: 4 } },
        }),
      },
    )
    const weaker = write(dir, 'weaker.json', {
      policies: { 'bank.test': { mode: 'testing', mxs: [], level: 1 } },
    })
    const before = fs.readFileSync(listFile(dir), 'utf8')
    const r = await linksec(['domains', 'import', weaker, '--config', dir])
    assert.equal(r.code, 0, r.err)
    assert.match(
      r.out,
      /^bank\.test: kept the stricter entry here \(mode enforce, level 4, mxs \.bank\.test\); the list says mode testing, level 1: mode testing < enforce, level 1 < 4/m,
    )
    assert.equal(fs.readFileSync(listFile(dir), 'utf8'), before)
    const w = await linksec(['domains', 'import', weaker, '--allow-weaker', '--config', dir])
    assert.match(w.out, /^bank\.test: weakened as asked/m)
    assert.equal(
      (JSON.parse(fs.readFileSync(listFile(dir), 'utf8')) as typeof LIST).policies['bank.test'].level,
      1,
    )
  })

  it('refuses bad JSON, wrong shapes, expired lists and bad entries with the entry named, writing nothing', async () => {
    const dir = world.configIni()
    const cases: [unknown, RegExp][] = [
      ['{"policies": {"a.test": ', /not valid JSON/],
      [{ policies: [] }, /"policies" is a list, not an object/],
      [{ ...LIST, expires: '2020-01-01T00:00:00Z' }, /expired at 2020-01-01T00:00:00\.000Z/],
      [
        {
          policies: {
            'ok.test': {},
            'x.test': { level: '3' },
            'bad name.test': {},
            'y.test': { mxs: 'mx.y.test' },
          },
        },
        /3 bad entries; nothing was imported[\s\S]*x\.test: level is a string[\s\S]*"bad name\.test": not a domain name[\s\S]*y\.test: mxs is a string/,
      ],
    ]
    for (const [doc, re] of cases) {
      const r = await linksec(['domains', 'import', write(dir, 'bad.json', doc), '--config', dir])
      assert.equal(r.code, 65, r.out + r.err)
      assert.match(r.err, re)
      assert.equal(fs.existsSync(listFile(dir)), false, 'nothing was written')
    }
    const skip = await linksec([
      'domains',
      'import',
      write(dir, 'bad.json', { policies: { 'ok.test': { level: 3 }, 'x.test': { level: 'high' } } }),
      '--skip-bad',
      '--config',
      dir,
    ])
    assert.equal(skip.code, 0, skip.err)
    assert.match(skip.err, /^skipped x\.test: level is a string/m)
    assert.match(skip.out, /1 added, .* 1 skipped/)
  })

  it('a hostile list (deep nesting, 200,001 names, odd names) is refused or bounded, never a crash', async () => {
    const dir = world.configIni()
    const deep = `{"policies": {"deep.test": {"mxs": ${'['.repeat(200_000)}${']'.repeat(200_000)}}, "__proto__": {"level": 4}}}`
    const d = await linksec(['domains', 'import', write(dir, 'deep.json', deep), '--config', dir])
    assert.equal(d.code, 65, d.err)
    assert.match(d.err, /deep\.test: mx pattern a list is not a host name/)
    assert.match(d.err, /"__proto__": not a domain name/)
    const many: Record<string, object> = {}
    for (let i = 0; i <= 200_000; i++) many[`d${i}.test`] = {}
    const m = await linksec([
      'domains',
      'import',
      write(dir, 'many.json', { policies: many }),
      '--config',
      dir,
    ])
    assert.equal(m.code, 65)
    assert.match(m.err, /200001 policies \(at most 200000\)/)
    assert.equal(fs.existsSync(listFile(dir)), false)
  })

  it('imports from an https URL with the key fetcher: private targets, http, redirects and oversize refused', async () => {
    const dir = world.configIni()
    const url = `https://lists.test:${world.https.port}/list.json`
    const ok = await linksec(['domains', 'import', url, '--config', dir])
    assert.equal(ok.code, 0, ok.err)
    assert.match(ok.out, /^shop\.test: added/m)
    assert.equal(
      (
        JSON.parse(fs.readFileSync(listFile(dir), 'utf8')) as {
          policies: Record<string, Record<string, string>>
        }
      ).policies['shop.test']!['linksec-source'],
      url,
    )
    const strict = world.configIni({ net: { allow_private_addresses: false } })
    const p = await linksec(['domains', 'import', url, '--config', strict])
    assert.equal(p.code, 65, p.err)
    assert.match(
      p.err,
      /lists\.test resolves only to addresses linksec does not fetch from: 127\.0\.0\.1 \(loopback\)/,
    )
    const h = await linksec(['domains', 'import', 'http://lists.test/list.json', '--config', dir])
    assert.match(h.err, /only https URLs are fetched/)
    const r = await linksec([
      'domains',
      'import',
      `https://lists.test:${world.https.port}/moved.json`,
      '--config',
      dir,
    ])
    assert.match(r.err, /redirects are not followed/)
    const big = await linksec([
      'domains',
      'import',
      `https://lists.test:${world.https.port}/huge.json`,
      '--config',
      dir,
    ])
    assert.equal(big.code, 65, big.err)
    assert.match(big.err, /huge\.json sent .*more than the 16777216-byte limit \(nothing was imported\)/)
    const missing = await linksec([
      'domains',
      'import',
      `https://lists.test:${world.https.port}/none.json`,
      '--config',
      dir,
    ])
    assert.equal(missing.code, 65)
    assert.match(missing.err, /answered HTTP 404/)
  })

  it('exports the static list and what the fleet learned (Redis), with sources and ages; another server imports it', async (t) => {
    if (!needTools(t, { 'redis-server': 'redis-server' })) return
    redis = await startRedis()
    const prefix = 'linksec-domains-test:'
    const shared = createRedisSharedCache({ url: redis.url, prefix, timeoutMs: 2000, log: silentLogger })
    const store = new LearnedStore({ max: 100, now: () => Date.now(), shared, namespace: 'learned:' })
    store.learn('learned.test', { level: 3, ttlSeconds: 3600 }, 'ehlo')
    store.learn('banner.test', { level: 2, ttlSeconds: 600 }, 'banner')
    await new Promise((ok) => setTimeout(ok, 300)) // learn() writes to Redis behind (best effort)
    await shared.close()

    const dir = world.configIni({ redis: { url: redis.url, prefix } })
    await linksec(['domains', 'import', write(dir, 'list.json', LIST), '--config', dir])
    const r = await linksec(['domains', 'export', '--config', dir])
    assert.equal(r.code, 0, r.err)
    const doc = JSON.parse(r.out) as { policies: Record<string, Record<string, unknown>> }
    assert.equal(doc.policies['bank.test']!['linksec-source'], path.join(dir, 'list.json'))
    assert.equal(typeof doc.policies['bank.test']!['linksec-age-seconds'], 'number')
    const l = doc.policies['learned.test']!
    assert.equal(l['linksec-source'], 'learned (ehlo)')
    assert.equal(l.level, 3)
    assert.ok(Date.parse(l['linksec-expires'] as string) > Date.now())
    assert.equal(doc.policies['banner.test']!['linksec-source'], 'learned (banner)')

    const other = world.configIni()
    const i = await linksec(['domains', 'import', write(other, 'from-fleet.json', r.out), '--config', other])
    assert.equal(i.code, 0, i.err)
    assert.match(i.out, /^learned\.test: added \(mode none, level 3\)$/m)
    assert.match(i.out, /4 added/)

    const noRedis = await linksec(['domains', 'export', '--config', other])
    assert.equal(noRedis.code, 0)
    assert.match(noRedis.err, /no \[redis\] url/)
    assert.equal(
      (JSON.parse(noRedis.out) as typeof doc).policies['learned.test']!['linksec-source'],
      `learned (ehlo) via ${path.join(other, 'from-fleet.json')}`,
    )
  })

  it('--server reads what a running linksec learned (GET /v1/domains on its HTTP listener); the static list wins', async () => {
    const rt = createRuntime(world.config(), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    const resolver = policyResolverFor(rt)
    resolver.learnDeclaration('peer.test', { level: 4, ttlSeconds: 3600 }, 'ehlo')
    resolver.learnDeclaration('bank.test', { level: 1, ttlSeconds: 3600 }, 'banner')
    const web = await startHttpService(rt, { listen: '127.0.0.1:0' })
    try {
      const dir = world.configIni()
      await linksec(['domains', 'import', write(dir, 'list.json', LIST), '--config', dir])
      const server = `127.0.0.1:${web.port}`
      const r = await linksec(['domains', 'export', '--server', server, '--config', dir])
      assert.equal(r.code, 0, r.err)
      const doc = JSON.parse(r.out) as { policies: Record<string, Record<string, unknown>> }
      assert.equal(doc.policies['peer.test']!.level, 4)
      assert.equal(doc.policies['peer.test']!['linksec-source'], `learned (ehlo) at ${server}`)
      assert.equal(typeof doc.policies['peer.test']!['linksec-age-seconds'], 'number')
      assert.equal(doc.policies['bank.test']!.level, 4, 'the static entry, not the weaker learned one')
      const down = await linksec(['domains', 'export', '--server', '127.0.0.1:1', '--config', dir])
      assert.equal(down.code, 75)
      assert.match(down.err, /127\.0\.0\.1:1 \(--server\) cannot be read/)
    } finally {
      await web.close(0)
      await rt.engine.close()
    }
  })

  it('usage errors are 64', async () => {
    assert.equal((await linksec(['domains'])).code, 64)
    assert.equal((await linksec(['domains', 'import'])).code, 64)
    assert.equal((await linksec(['domains', 'export', 'x'])).code, 64)
  })
})
