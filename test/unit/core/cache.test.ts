/**
 * The lookup cache's bounds: the recency order, at most `max` entries
 * whatever number of distinct keys passed through, expired entries swept
 * (unless the owner keeps them), concurrent loads shared, and the shared
 * level's encoding.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LookupCache, RecencyMap, SWEEP_EVERY_MS, type SharedCache } from '../../../core/cache'

test('RecencyMap drops the least recently used key; a read makes a key recent', () => {
  const m = new RecencyMap<string, number>(3)
  for (const k of ['a', 'b', 'c']) m.set(k, k.charCodeAt(0))
  assert.equal(m.get('a'), 97)
  m.set('d', 100)
  assert.deepEqual(
    [...m.entries()].map(([k]) => k),
    ['c', 'a', 'd'],
  )
  assert.equal(m.peek('b'), undefined)
  // peek does not touch the order.
  m.peek('c')
  m.set('e', 101)
  assert.equal(m.get('c'), undefined)
  assert.equal(m.size, 3)
})

test('RecencyMap with max 0 keeps nothing', () => {
  const m = new RecencyMap<string, number>(0)
  m.set('a', 1)
  assert.equal(m.size, 0)
  assert.equal(m.get('a'), undefined)
})

test('after 10,000 distinct keys a cache of max 100 holds 100, the most recent ones', () => {
  const c = new LookupCache<string>({ max: 100 })
  for (let i = 0; i < 10_000; i++) c.set(`k${i}`, `v${i}`, 60_000)
  assert.equal(c.size, 100)
  assert.equal(c.get('k9999'), 'v9999')
  assert.equal(c.get('k9900'), 'v9900')
  assert.equal(c.get('k9899'), undefined)
})

test('expired entries are swept on the first set a minute after the last sweep', () => {
  let now = 1_000_000
  const c = new LookupCache<string>({ max: 1000, now: () => now })
  for (let i = 0; i < 500; i++) c.set(`short${i}`, 'x', 1_000)
  c.set('long', 'y', 3_600_000)
  now += SWEEP_EVERY_MS - 1
  c.set('another', 'z', 1_000)
  assert.equal(c.size, 502, 'no sweep before a minute has passed')
  now += 1
  c.set('trigger', 'w', 1_000)
  // 'another' is still live (1 s ttl from a millisecond ago) and 'trigger' is new.
  assert.deepEqual(
    ['long', 'another', 'trigger'].map((k) => c.get(k)),
    ['y', 'z', 'w'],
  )
  assert.equal(c.size, 3)
})

test('keepExpired keeps an expired value peek() may still need; get() still misses it', () => {
  let now = 0
  const c = new LookupCache<string>({ max: 10, now: () => now, keepExpired: (v) => v === 'strict' })
  c.set('a', 'strict', 1_000)
  c.set('b', 'lax', 1_000)
  now = 5_000
  assert.equal(c.sweep(), 1)
  assert.equal(c.peek('a')?.value, 'strict')
  assert.equal(c.get('a'), undefined)
  assert.equal(c.peek('b'), undefined)
})

test('concurrent loads of one key run once; a max-0 cache still shares them but keeps nothing', async () => {
  for (const max of [10, 0]) {
    const c = new LookupCache<string>({ max })
    let loads = 0
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const load = async () => {
      loads++
      await gate
      return { value: 'v', ttlMs: 60_000 }
    }
    const all = Promise.all(Array.from({ length: 5 }, () => c.getOrLoad('k', load)))
    release()
    assert.deepEqual(
      (await all).map((r) => r.value),
      ['v', 'v', 'v', 'v', 'v'],
    )
    assert.equal(loads, 1)
    assert.equal(c.size, max > 0 ? 1 : 0)
  }
})

test('the shared level: values go out encoded with their ttl and come back decoded', async () => {
  const store = new Map<string, string>()
  const shared: SharedCache = {
    get: async (k) => store.get(k),
    set: async (k, v) => void store.set(k, v),
  }
  const encode = (v: { n: number }) => String(v.n)
  const decode = (s: string) => ({ n: Number(s) })
  const one = new LookupCache<{ n: number }>({ max: 10, shared, namespace: 'ns:', encode, decode })
  await one.getOrLoad('k', async () => ({ value: { n: 42 }, ttlMs: 60_000 }))
  assert.equal(store.get('ns:k'), '42')
  const two = new LookupCache<{ n: number }>({ max: 10, shared, namespace: 'ns:', encode, decode })
  const r = await two.getOrLoad('k', async () => assert.fail('the shared level should answer'))
  assert.deepEqual(r.value, { n: 42 })
})
