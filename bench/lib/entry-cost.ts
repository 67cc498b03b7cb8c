/**
 * What one entry of each lookup cache costs in V8 heap, measured in a child
 * process with --expose-gc (so a full collection can be forced): the heap
 * in use before the cache exists, then after N distinct names went through
 * it, divided by N. The lookups answer from in-process fakes that find
 * nothing (NXDOMAIN, no WKD host), as most sender and recipient domains do,
 * so the figure is the cache's own cost: key, LRU slot, entry, value.
 *
 *   node --expose-gc dist/bench/lib/entry-cost.js [N]   (prints JSON)
 */
import { execFile } from 'node:child_process'
import { parseConfig } from '../../core/config'
import { LinksecError } from '../../core/errors'
import { createKeyFinder } from '../../core/keys/finder'
import { KeyStore } from '../../core/keys/store'
import { silentLogger } from '../../core/log'
import { createMetrics, type Metrics } from '../../core/metrics'
import type { DnsClient, HttpsClient } from '../../core/net/types'
import { LearnedStore } from '../../core/policy/learned'
import { createPolicyResolver } from '../../core/policy/resolver'
import { EMPTY_STATIC_LIST } from '../../core/policy/static-list'
import { createSignaturePolicyLookup } from '../../core/verify/sig-policy'

export interface EntryCosts {
  entries: number
  /** Heap bytes per entry, by cache. */
  bytes: { keys: number; signaturePolicy: number; policy: number; learned: number }
}

const nxdomain: DnsClient = {
  query: () => Promise.resolve({ rcode: 'NXDOMAIN', authenticated: false, records: [] }),
}
const noHost: HttpsClient = {
  get: (url) =>
    Promise.reject(
      new LinksecError('LINKSEC_FETCH_NO_ADDRESS', `no address for ${new URL(url).hostname}`, {
        temporary: false,
      }),
    ),
}

type Fill = (n: number) => Promise<unknown>

/** One builder per cache: builds it for `max` entries, returns how to put entry n in. */
const BUILDERS: Record<keyof EntryCosts['bytes'], (max: number, metrics: Metrics) => Fill> = {
  keys: (max) => {
    const f = createKeyFinder({
      methods: ['wkd', 'openpgpkey'],
      store: new KeyStore('/nonexistent'),
      remote: { dns: nxdomain, https: noHost },
      cacheMax: max,
      positiveTtlMs: 3_600_000,
      negativeTtlMs: 300_000,
    })
    return (n) => f.find({ address: `u${n}@d${n}.bench.test`, local: `u${n}`, domain: `d${n}.bench.test` })
  },
  signaturePolicy: (max) => {
    const lookup = createSignaturePolicyLookup({ dns: nxdomain, cacheMax: max })
    return (n) => lookup(`d${n}.bench.test`)
  },
  policy: (max, metrics) => {
    const config = parseConfig({ policy: { cache_max: max, learned_max: 0 } }, '/nonexistent')
    const r = createPolicyResolver({
      dns: nxdomain,
      https: noHost,
      now: Date.now,
      config,
      metrics,
      log: silentLogger,
      staticList: EMPTY_STATIC_LIST,
      learned: new LearnedStore({ max: 0, now: Date.now }),
    })
    return (n) => r.resolve(`r${n}.bench.test`)
  },
  learned: (max) => {
    const s = new LearnedStore({ max, now: Date.now })
    return async (n) => s.learn(`mx${n}.bench.test`, { level: 3, ttlSeconds: 86400 }, 'ehlo')
  },
}

function heapUsed(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

async function measureOne(
  build: (max: number, metrics: Metrics) => Fill,
  entries: number,
  metrics: Metrics,
): Promise<number> {
  const before = heapUsed()
  const fill = build(entries, metrics)
  for (let n = 0; n < entries; n += 100)
    await Promise.all(Array.from({ length: Math.min(100, entries - n) }, (_, i) => fill(n + i)))
  const after = heapUsed()
  // Keep the cache reachable until after the measurement.
  if (typeof fill !== 'function') throw new Error('unreachable')
  return Math.round((after - before) / entries)
}

export async function measureEntryCosts(entries: number): Promise<EntryCosts> {
  const bytes = {} as EntryCosts['bytes']
  const metrics = createMetrics({ processMetrics: false })
  for (const [name, build] of Object.entries(BUILDERS))
    bytes[name as keyof EntryCosts['bytes']] = await measureOne(build, entries, metrics)
  return { entries, bytes }
}

/** Runs the measurement in a fresh `node --expose-gc` process. */
export function entryCostsInChild(entries: number, timeoutMs = 120_000): Promise<EntryCosts> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', __filename, String(entries)],
      { timeout: timeoutMs },
      (err, stdout) => {
        if (err) {
          reject(err instanceof Error ? err : new Error('node --expose-gc failed'))
          return
        }
        try {
          resolve(JSON.parse(stdout) as EntryCosts)
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)))
        }
      },
    )
  })
}

if (require.main === module) {
  measureEntryCosts(Number(process.argv[2] ?? 100_000)).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (e: unknown) => {
      process.stderr.write(`entry-cost: ${e instanceof Error ? e.message : String(e)}\n`)
      process.exitCode = 1
    },
  )
}
