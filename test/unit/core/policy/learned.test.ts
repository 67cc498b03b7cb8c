/**
 * The learned-declaration store's bounds: at most learned_max names, and
 * expired declarations swept rather than kept until pushed out.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SWEEP_EVERY_MS } from '../../../../core/cache'
import { LearnedStore } from '../../../../core/policy/learned'

test('after 5,000 distinct peers a store of learned_max 100 holds 100, the latest', () => {
  const s = new LearnedStore({ max: 100, now: () => 0 })
  for (let i = 0; i < 5000; i++) s.learn(`mx${i}.example`, { level: 3, ttlSeconds: 3600 }, 'ehlo')
  assert.equal(s.size, 100)
  assert.equal(s.get('mx4999.example')?.level, 3)
  assert.equal(s.get('mx4899.example'), undefined)
})

test('expired declarations are swept a minute after the last sweep; live ones stay', () => {
  let now = 0
  const s = new LearnedStore({ max: 1000, now: () => now })
  for (let i = 0; i < 10; i++) s.learn(`short${i}.example`, { level: 2, ttlSeconds: 30 }, 'ehlo')
  s.learn('long.example', { level: 4, ttlSeconds: 86400 }, 'banner')
  now = SWEEP_EVERY_MS
  s.learn('new.example', { level: 1, ttlSeconds: 30 }, 'ehlo')
  assert.equal(s.size, 2)
  assert.equal(s.get('long.example')?.level, 4)
  assert.equal(s.get('new.example')?.level, 1)
})
