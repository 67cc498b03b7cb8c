/** The one timeout race (core/net/deadline.ts): whichever comes first, and never both. */
import assert from 'node:assert/strict'
import { setImmediate as tick } from 'node:timers/promises'
import { test } from 'node:test'
import { raceDeadline, settleWithin } from '../../../../core/net/deadline'

/** A promise settled by hand. */
function pending<T>() {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

test('the work wins: its value, and onLate never runs, even once its time has passed', async () => {
  let late = 0
  const got = await settleWithin(Promise.resolve('answer'), 5, () => {
    late++
    return 'late'
  })
  assert.equal(got, 'answer')
  await new Promise((r) => setTimeout(r, 20))
  assert.equal(late, 0)
})

test('the work fails first: its own error, unchanged; onLate never runs', async () => {
  let late = 0
  const err = new Error('lookup failed')
  await assert.rejects(
    settleWithin(Promise.reject(err), 5, () => late++),
    (e) => e === err,
  )
  await new Promise((r) => setTimeout(r, 20))
  assert.equal(late, 0)
})

test('time runs out first: onLate answers once; what the work does afterwards is ignored', async () => {
  const work = pending<string>()
  let late = 0
  const got = await settleWithin(work.promise, 1, () => {
    late++
    return 'TEMP'
  })
  assert.equal(got, 'TEMP')
  let unhandled = 0
  const count = () => unhandled++
  process.on('unhandledRejection', count)
  work.reject(new Error('too late to matter'))
  await tick()
  await tick()
  process.off('unhandledRejection', count)
  assert.equal(unhandled, 0)
  assert.equal(late, 1)
})

test('raceDeadline: the late error rejects when time runs out, the value when it does not', async () => {
  await assert.rejects(
    raceDeadline(pending<number>().promise, 1, () => new Error('took too long')),
    /took too long/,
  )
  assert.equal(await raceDeadline(Promise.resolve(7), 1000, () => new Error('never')), 7)
})
