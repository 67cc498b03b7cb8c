import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BLOCK_BYTES, BlockPool, BodyBlocks, IDLE_BLOCKS } from '../../../milter/body-blocks'
import { releaseNow, RELEASE_MIN_BYTES } from '../../../milter/release'

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

describe('body blocks', () => {
  it('keeps any sequence of chunks byte for byte, whatever block boundaries they cross', () => {
    const pool = new BlockPool(64)
    for (const sizes of [
      [1],
      [BLOCK_BYTES],
      [BLOCK_BYTES - 1, 2],
      [65535, 65535, 65535, 7],
      [3 * BLOCK_BYTES + 5, 1],
    ]) {
      const blocks = new BodyBlocks(pool)
      const chunks = sizes.map((n, i) => bytes(n, i))
      const views: Buffer[] = []
      for (const c of chunks) views.push(...blocks.append(c, () => true)!)
      assert.deepEqual(Buffer.concat(views), Buffer.concat(chunks), `sizes ${sizes.join(',')}`)
      assert.ok(
        views.every((v) => v.buffer.byteLength === BLOCK_BYTES),
        'every view lies in a block',
      )
      blocks.release()
    }
  })

  it('reserves each block whole, and keeps nothing more once a reservation is refused', () => {
    const pool = new BlockPool(64)
    const asked: number[] = []
    const blocks = new BodyBlocks(pool)
    assert.ok(blocks.append(bytes(100, 1), (n) => (asked.push(n), true)))
    assert.ok(
      blocks.append(bytes(100, 2), (n) => (asked.push(n), true)),
      'room left in the first block',
    )
    assert.deepEqual(asked, [BLOCK_BYTES])
    assert.equal(
      blocks.append(bytes(BLOCK_BYTES, 3), () => false),
      undefined,
    )
    blocks.release()
  })

  it('hands blocks back for reuse, up to its bound, and lets a burst go once nothing is held', () => {
    const pool = new BlockPool(40)
    const a = new BodyBlocks(pool)
    const b = new BodyBlocks(pool)
    a.append(bytes(30 * BLOCK_BYTES, 1), () => true)
    b.append(bytes(20 * BLOCK_BYTES, 2), () => true)
    a.release()
    assert.equal(pool.idle, 30, 'b still holds blocks: a’s are kept for reuse')
    const c = new BodyBlocks(pool)
    c.append(bytes(10 * BLOCK_BYTES, 3), () => true)
    assert.equal(pool.idle, 20, 'c reused 10 of them')
    c.release()
    b.release()
    assert.equal(pool.idle, IDLE_BLOCKS, 'nothing held: only a few are kept')
  })
})

describe('releaseNow', () => {
  it('frees a large buffer that owns its memory (a view of it then reads as empty)', () => {
    const big = Buffer.alloc(RELEASE_MIN_BYTES, 1)
    const view = big.subarray(10, 20)
    assert.equal(releaseNow(big), true, 'this Node can detach (Node 20 through the flagged transfer)')
    assert.equal(big.length, 0)
    assert.equal(view.length, 0)
  })

  it('leaves small buffers, views and pooled buffers alone', () => {
    const small = Buffer.alloc(RELEASE_MIN_BYTES - 1)
    assert.equal(releaseNow(small), false)
    assert.equal(small.length, RELEASE_MIN_BYTES - 1)
    const whole = Buffer.alloc(2 * RELEASE_MIN_BYTES)
    const part = whole.subarray(0, RELEASE_MIN_BYTES + 1)
    assert.equal(releaseNow(part), false, 'a view does not own its memory')
    assert.equal(whole.length, 2 * RELEASE_MIN_BYTES)
  })
})
