import { test } from 'node:test'
import * as assert from 'node:assert/strict'
import { formatSpread, median, percentile, ratio, rotate, round, spread } from '../../../bench/lib/stats'

test('median of odd and even counts, ignoring order and non-finite values', () => {
  assert.equal(median([3, 1, 2]), 2)
  assert.equal(median([4, 1, 3, 2]), 2.5)
  assert.equal(median([5, NaN, 1, Infinity, 3]), 3)
  assert.ok(Number.isNaN(median([])))
})

test('percentile uses nearest rank, so the value was really observed', () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i) // 100..1, unsorted
  assert.equal(percentile(values, 50), 50)
  assert.equal(percentile(values, 99), 99)
  assert.equal(percentile(values, 100), 100)
  assert.equal(percentile(values, 0), 1)
  assert.equal(percentile([7, 1, 9], 50), 7)
  assert.equal(percentile([10, 20], 99), 20)
  assert.ok(Number.isNaN(percentile([], 50)))
  assert.throws(() => percentile([1], 101), RangeError)
})

test('ratio refuses missing or non-positive denominators', () => {
  assert.equal(ratio(700, 734), 700 / 734)
  assert.ok(Number.isNaN(ratio(1, 0)))
  assert.ok(Number.isNaN(ratio(1, -2)))
  assert.ok(Number.isNaN(ratio(NaN, 2)))
})

test('spread and its formatting', () => {
  const s = spread([753, 715, 734])
  assert.deepEqual(s, { median: 734, min: 715, max: 753, n: 3 })
  assert.equal(formatSpread(s), '734 (715–753)')
  assert.equal(formatSpread(spread([])), 'n/a')
  assert.equal(formatSpread(spread([1.23456])), '1.23')
})

test('round keeps three significant digits below 100', () => {
  assert.equal(round(0.123456), 0.123)
  assert.equal(round(12.3456), 12.3)
  assert.equal(round(734.4), 734)
  assert.ok(Number.isNaN(round(Infinity)))
})

test('rotate moves the first configuration to the end each round', () => {
  assert.deepEqual(rotate(['a', 'b', 'c'], 0), ['a', 'b', 'c'])
  assert.deepEqual(rotate(['a', 'b', 'c'], 1), ['b', 'c', 'a'])
  assert.deepEqual(rotate(['a', 'b', 'c'], 4), ['b', 'c', 'a'])
  assert.deepEqual(rotate([], 3), [])
})
