/**
 * Key discovery against fake DNS and HTTPS clients: method order (advanced,
 * direct only without an address, OPENPGPKEY), outcomes, user-ID filtering,
 * the cache (positive/negative lifetimes, dedupe, no caching of temporary
 * failures) and the metrics.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import { LinksecError } from '../../../../core/errors'
import { parseAddress } from '../../../../core/keys/address'
import { createKeyFinder, type KeyFinder } from '../../../../core/keys/finder'
import { openpgpkeyName, wkdUrls } from '../../../../core/keys/names'
import { KeyStore } from '../../../../core/keys/store'
import { createMetrics, type Metrics } from '../../../../core/metrics'
import type { DnsAnswer, DnsClient, FetchResponse, HttpsClient } from '../../../../core/net/types'

const alice = parseAddress('alice@example.org')!
let aliceKey: Buffer
let bothKey: Buffer
let dir: string

before(async () => {
  const gen = async (userIDs: { email: string }[]) =>
    Buffer.from((await openpgp.generateKey({ userIDs, format: 'binary' })).publicKey)
  aliceKey = await gen([{ email: 'alice@example.org' }])
  bothKey = await gen([{ email: 'mallory@example.org' }, { email: 'alice@example.org' }])
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-finder-'))
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

type Reply = FetchResponse | LinksecError
interface World {
  dns: Record<string, DnsAnswer | 'throw'>
  web: Record<string, Reply | (() => Promise<Reply>)>
  gets: string[]
}

function fakes(w: World): { dns: DnsClient; https: HttpsClient } {
  const dns: DnsClient = {
    async query(name, type) {
      const a = w.dns[`${name}/${type}`]
      if (a === 'throw') throw new LinksecError('LINKSEC_DNS_TIMEOUT', 'timeout')
      return a ?? { rcode: 'NXDOMAIN', authenticated: false, records: [] }
    },
  }
  const https: HttpsClient = {
    async get(url) {
      w.gets.push(url)
      const r = w.web[url]
      const v = typeof r === 'function' ? await r() : r
      if (v === undefined) return ok(404, Buffer.alloc(0), url)
      if (v instanceof LinksecError) throw v
      return v
    },
  }
  return { dns, https }
}

const ok = (status: number, body: Buffer, url = ''): FetchResponse => ({ status, headers: {}, body, url })
const A = (name: string): DnsAnswer => ({
  rcode: 'NOERROR',
  authenticated: false,
  records: [{ type: 'A', name, ttl: 60, address: '192.0.2.1' }],
})

function finder(
  w: World,
  opts: { now?: () => number; metrics?: Metrics; methods?: string[] } = {},
): KeyFinder {
  return createKeyFinder({
    methods: opts.methods ?? ['local', 'wkd', 'openpgpkey'],
    store: new KeyStore(path.join(dir, 'empty')),
    remote: fakes(w),
    metrics: opts.metrics,
    now: opts.now,
    cacheMax: 100,
    positiveTtlMs: 10_000,
    negativeTtlMs: 1_000,
  })
}

const urls = wkdUrls(alice)
const world = (over: Partial<World> = {}): World => ({ dns: {}, web: {}, gets: [], ...over })

test('advanced method first when openpgpkey.<domain> has an address; only the address UID is kept', async () => {
  const w = world({
    dns: { 'openpgpkey.example.org/A': A('openpgpkey.example.org') },
    web: { [urls.advanced]: ok(200, bothKey) },
  })
  const r = await finder(w).find(alice)
  assert.equal(r.kind, 'found')
  if (r.kind !== 'found') return
  assert.equal(r.source, 'wkd_advanced')
  assert.deepEqual(
    r.ring.keys[0]!.users.map((u) => u.userID?.email),
    ['alice@example.org'],
  )
  assert.deepEqual(w.gets, [urls.advanced])
})

test('direct method only when the advanced host has no address', async () => {
  const w = world({ web: { [urls.direct]: ok(200, aliceKey) } })
  const r = await finder(w).find(alice)
  assert.equal(r.kind === 'found' && r.source, 'wkd_direct')
  assert.deepEqual(w.gets, [urls.direct])
})

test('a non-responding advanced host is not a reason to fall back: temperror, direct never asked', async () => {
  const w = world({
    dns: { 'openpgpkey.example.org/A': A('openpgpkey.example.org') },
    web: {
      [urls.advanced]: new LinksecError('LINKSEC_FETCH_TIMEOUT', 'no answer in 5000 ms'),
      [urls.direct]: ok(200, aliceKey),
    },
  })
  const r = await finder(w).find(alice)
  assert.equal(r.kind, 'temperror')
  assert.ok(!w.gets.includes(urls.direct))
})

test('HTTP 5xx and DNS failures are temporary; 404 is "not found"', async () => {
  const five = world({
    dns: { 'openpgpkey.example.org/A': A('x') },
    web: { [urls.advanced]: ok(503, Buffer.alloc(0)) },
  })
  assert.equal((await finder(five).find(alice)).kind, 'temperror')
  const dnsDown = world({ dns: { 'openpgpkey.example.org/A': 'throw' } })
  assert.equal((await finder(dnsDown).find(alice)).kind, 'temperror')
  const none = world()
  const r = await finder(none).find(alice)
  assert.equal(r.kind, 'notfound')
})

test("a key without the address user ID, and garbage, are unusable: neutral (the key server's fault)", async () => {
  const mallory = Buffer.from(
    (await openpgp.generateKey({ userIDs: [{ email: 'mallory@example.org' }], format: 'binary' })).publicKey,
  )
  const wrong = world({ web: { [urls.direct]: ok(200, mallory) } })
  const r = await finder(wrong).find(alice)
  assert.deepEqual(r.kind === 'unusable' && r.result, 'neutral')
  const junk = world({ web: { [urls.direct]: ok(200, Buffer.from('<html>hi</html>')) } })
  const j = await finder(junk).find(alice)
  assert.deepEqual(j.kind === 'unusable' && j.result, 'neutral')
})

test('OPENPGPKEY: used when DNSSEC-authenticated, ignored otherwise', async () => {
  const name = openpgpkeyName(alice)
  const rec = (authenticated: boolean): DnsAnswer => ({
    rcode: 'NOERROR',
    authenticated,
    records: [{ type: 'OPENPGPKEY', name, ttl: 60, data: aliceKey }],
  })
  const secure = await finder(world({ dns: { [`${name}/OPENPGPKEY`]: rec(true) } })).find(alice)
  assert.equal(secure.kind === 'found' && secure.source, 'openpgpkey')
  const insecure = await finder(world({ dns: { [`${name}/OPENPGPKEY`]: rec(false) } })).find(alice)
  assert.equal(insecure.kind, 'notfound')
})

test('cache: positive and negative lifetimes, temperror not cached, metrics counted', async () => {
  let now = 1_000_000
  const metrics = createMetrics({ processMetrics: false })
  const w = world({ web: { [urls.direct]: ok(200, aliceKey) } })
  const f = finder(w, { now: () => now, metrics })
  assert.equal((await f.find(alice)).kind, 'found')
  const second = await f.find(alice)
  assert.equal(second.kind === 'found' && second.source, 'cache')
  assert.equal(w.gets.length, 1)
  now += 10_001
  await f.find(alice)
  assert.equal(w.gets.length, 2, 'refetched after positive_ttl')

  const bob = parseAddress('bob@example.org')!
  await f.find(bob)
  await f.find(bob)
  const bobGets = () => w.gets.filter((u) => u.includes('l=bob')).length
  assert.equal(bobGets(), 1, 'negative answer cached')
  now += 1_001
  await f.find(bob)
  assert.equal(bobGets(), 2, 'negative entry expired after negative_ttl')

  const carol = parseAddress('carol@example.org')!
  w.web[wkdUrls(carol).direct] = new LinksecError('LINKSEC_FETCH_CONNECT', 'refused')
  assert.equal((await f.find(carol)).kind, 'temperror')
  assert.equal((await f.find(carol)).kind, 'temperror')
  assert.equal(w.gets.filter((u) => u.includes('l=carol')).length, 2, 'temporary failures are retried')

  const text = await metrics.registry.metrics()
  assert.match(text, /linksec_key_lookups_total\{method="wkd_direct",outcome="found"\} 2/)
  assert.match(text, /linksec_key_lookups_total\{method="cache",outcome="found"\} 1/)
  assert.match(text, /linksec_key_lookups_total\{method="wkd_direct",outcome="error"\} 2/)
  assert.match(text, /linksec_key_lookup_duration_seconds_count\{method="wkd"\} \d+/)
})

test('concurrent lookups of one address share one fetch', async () => {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const w = world({ web: { [urls.direct]: async () => (await gate, ok(200, aliceKey)) } })
  const f = finder(w)
  const all = Promise.all(Array.from({ length: 20 }, () => f.find(alice)))
  await new Promise((r) => setImmediate(r))
  release()
  const results = await all
  assert.ok(results.every((r) => r.kind === 'found'))
  assert.equal(w.gets.length, 1)
})

test('the local store answers first and is not cached', async () => {
  const storeDir = path.join(dir, 'store')
  const store = new KeyStore(storeDir)
  await store.add(aliceKey)
  const w = world()
  const f = createKeyFinder({
    methods: ['local', 'wkd'],
    store,
    remote: fakes(w),
    cacheMax: 10,
    positiveTtlMs: 1,
    negativeTtlMs: 1,
  })
  const r = await f.find(alice)
  assert.equal(r.kind === 'found' && r.source, 'local')
  assert.equal(w.gets.length, 0)
  await assert.rejects(store.add(aliceKey, 'bob@example.org'), /no user ID for bob@example.org/)
})

test('parsed rings are bounded: past parsedMax a cached key is parsed again on use', async () => {
  const bob = parseAddress('bob@example.org')!
  const bobKey = Buffer.from(
    (await openpgp.generateKey({ userIDs: [{ email: 'bob@example.org' }], format: 'binary' })).publicKey,
  )
  const w = world({ web: { [urls.direct]: ok(200, aliceKey), [wkdUrls(bob).direct]: ok(200, bobKey) } })
  const f = createKeyFinder({
    methods: ['wkd'],
    store: new KeyStore(path.join(dir, 'empty')),
    remote: fakes(w),
    cacheMax: 10,
    parsedMax: 1,
    positiveTtlMs: 60_000,
    negativeTtlMs: 1_000,
  })
  await f.find(alice)
  assert.equal(f.peek!(alice)?.kind, 'found', 'the ring just fetched is kept parsed')
  await f.find(bob)
  assert.equal(f.peek!(alice), undefined, 'only one parsed ring is kept: alice needs parsing again')
  const again = await f.find(alice)
  assert.equal(again.kind === 'found' && again.source, 'cache')
  assert.equal(again.kind === 'found' && again.ring.address, 'alice@example.org')
  assert.equal(w.gets.length, 2, 'parsed from the cached bytes, not fetched again')
  assert.equal(f.peek!(alice)?.kind, 'found')
})

test('the fleet level: a found key and a "not found" answer come back from another instance', async () => {
  const store = new Map<string, string>()
  const shared = {
    get: async (k: string) => store.get(k),
    set: async (k: string, v: string) => void store.set(k, v),
  }
  const bob = parseAddress('Bob@Example.org')!
  const make = (w: World) =>
    createKeyFinder({
      methods: ['wkd'],
      store: new KeyStore(path.join(dir, 'empty')),
      remote: fakes(w),
      cacheMax: 10,
      positiveTtlMs: 60_000,
      negativeTtlMs: 60_000,
      shared,
    })
  const first = world({ web: { [urls.direct]: ok(200, aliceKey) } })
  await make(first).find(alice)
  await make(first).find(bob)
  assert.match(store.get('key:alice@example.org')!, /"kind":"found"/)
  const second = world()
  const other = make(second)
  const a = await other.find(alice)
  assert.equal(a.kind === 'found' && a.ring.keys.length, 1)
  const b = await other.find(bob)
  assert.deepEqual(b, { kind: 'notfound', reason: `no OpenPGP key is published for ${bob.address}` })
  assert.equal(second.gets.length, 0, 'nothing fetched by the second instance')
})

test('after many distinct senders the "not found" answers name each sender', async () => {
  const f = finder(world())
  for (let i = 0; i < 50; i++) {
    const a = parseAddress(`u${i}@d${i}.example`)!
    const r = await f.find(a)
    assert.deepEqual(r, { kind: 'notfound', reason: `no OpenPGP key is published for u${i}@d${i}.example` })
    assert.deepEqual(f.peek!(a), r)
  }
})
