import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  applyHeaderEdits,
  flushStagedHeaders,
  removeHeaderOccurrence,
  stagedHeaders,
} from '../../../plugins/headers'
import { connectionWith } from './fakes'

const AR = 'Authentication-Results'
/** Parsed values keep their line end; compare the text. */
const values = (h: { get_all(n: string): readonly string[] }, name: string) =>
  h.get_all(name).map((v) => v.trim())

describe('removeHeaderOccurrence (on haraka-email-message Header)', () => {
  it('removes exactly the n-th field of a name, from the raw lines and the value lists', () => {
    const { transaction: txn } = connectionWith({
      headerLines: [`${AR}: a; spf=pass`, 'Subject: x', `${AR}: b; dkim=pass`, `${AR}: c; x=1`],
    })
    assert.equal(removeHeaderOccurrence(txn.header, AR, 2), true)
    assert.deepEqual(values(txn.header, AR), ['a; spf=pass', 'c; x=1'])
    assert.deepEqual(
      txn.header.header_list.map((l) => l.trim()),
      [`${AR}: a; spf=pass`, 'Subject: x', `${AR}: c; x=1`],
    )
  })

  it('is false for an occurrence that does not exist, and leaves other names alone', () => {
    const { transaction: txn } = connectionWith({ headerLines: [`Original-${AR}: a; x=1`] })
    assert.equal(removeHeaderOccurrence(txn.header, AR, 1), false)
    assert.equal(txn.header.get_all(`Original-${AR}`).length, 1)
  })
})

describe('applyHeaderEdits / flushStagedHeaders', () => {
  it('deletes at once (highest index first, duplicates once) and stages additions until queueing', () => {
    const { transaction: txn } = connectionWith({ headerLines: [`${AR}: a`, `${AR}: b`, `${AR}: c`] })
    applyHeaderEdits(txn, [
      { op: 'delete', name: AR, index: 1 },
      { op: 'delete', name: AR, index: 3 },
      { op: 'delete', name: AR, index: 1 },
      { op: 'prepend', name: AR, value: 'mx.test; x-tls=none' },
    ])
    assert.deepEqual(values(txn.header, AR), ['b'])
    assert.equal(stagedHeaders(txn).length, 1)
    assert.equal(flushStagedHeaders(txn), 1)
    assert.deepEqual(values(txn.header, AR), ['mx.test; x-tls=none', 'b'])
    assert.equal(txn.header.header_list[0], `${AR}: mx.test; x-tls=none\n`)
    assert.equal(flushStagedHeaders(txn), 0, 'staged additions are written once')
  })

  it('with nothing to delete leaves the fields alone and keeps additions in order across calls', () => {
    const { transaction: txn } = connectionWith({ headerLines: [`${AR}: a`, 'Subject: s'] })
    const before = [...txn.header.header_list]
    applyHeaderEdits(txn, [{ op: 'prepend', name: AR, value: 'mx.test; x-tls=none' }])
    applyHeaderEdits(txn, [
      { op: 'prepend', name: AR, value: 'mx.test; x-openpgp=pass' },
      { op: 'append', name: 'X-Note', value: 'n' },
    ])
    assert.deepEqual(txn.header.header_list, before)
    assert.deepEqual(
      stagedHeaders(txn).map((e) => e.value),
      ['mx.test; x-tls=none', 'mx.test; x-openpgp=pass', 'n'],
    )
    assert.equal(flushStagedHeaders(txn), 3)
    // Same order as the milter writes them: the pipeline's first field on top.
    assert.deepEqual(values(txn.header, AR), ['mx.test; x-tls=none', 'mx.test; x-openpgp=pass', 'a'])
  })
})
