/**
 * Where the milter keeps a large body: fixed 64 KiB blocks that one listener's
 * sessions share and reuse, filled in order. A body up to SMALL_BODY_BYTES is
 * kept as before (its chunks, each its own exact-size copy when needed:
 * milter/session.ts keepBody); past that, its chunks are copied into blocks.
 *
 * Why (bench/README.md, "Stop 22: memory under attack"): under the
 * big-bodies attack every refused session dropped up to 10 MB of 64 KB chunk
 * buffers at once, and those lived until V8's next collection while glibc
 * kept much of what was freed; the resident peak was about twice
 * [milter] max_held_bytes over the base. Blocks are never freed while the
 * listener runs, only handed back: what the bodies take stays within
 * max_held_bytes whatever the churn, because a block is reserved in the
 * shared pool (milter/limits.ts HeldBytes) for its whole size while a
 * session holds it.
 */

export const BLOCK_BYTES = 64 * 1024
/** Bodies up to this size are kept as their chunks (small mail: no block, no extra copy). */
export const SMALL_BODY_BYTES = 64 * 1024

/** Free blocks kept when no body holds any (a burst's blocks are let go once it is over). */
export const IDLE_BLOCKS = 16

/** The free blocks of one listener. */
export class BlockPool {
  private readonly free: Buffer[] = []
  private inUse = 0

  /** `maxFree`: free blocks kept for reuse (the pool's bytes, in blocks); more are let go. */
  constructor(private readonly maxFree: number) {}

  take(): Buffer {
    this.inUse++
    return this.free.pop() ?? Buffer.allocUnsafeSlow(BLOCK_BYTES)
  }

  give(blocks: readonly Buffer[]): void {
    this.inUse -= blocks.length
    for (const b of blocks) if (this.free.length < this.maxFree) this.free.push(b)
    if (this.inUse === 0 && this.free.length > IDLE_BLOCKS) this.free.length = IDLE_BLOCKS
  }

  /** Free blocks held for reuse (tests, diagnostics). */
  get idle(): number {
    return this.free.length
  }
}

/**
 * One message's blocks. `append` copies a chunk in and returns views of the
 * copied bytes (one per block it spans), which the transaction's body list
 * keeps; `reserve` is asked for each new block (false: the pool is full,
 * nothing more is kept).
 */
export class BodyBlocks {
  private readonly blocks: Buffer[] = []
  private fill = BLOCK_BYTES

  constructor(private readonly pool: BlockPool) {}

  /** The views of `chunk`'s bytes in blocks, or undefined if a block could not be reserved. */
  append(chunk: Buffer, reserve: (n: number) => boolean): Buffer[] | undefined {
    const views: Buffer[] = []
    for (let at = 0; at < chunk.length;) {
      if (this.fill === BLOCK_BYTES) {
        if (!reserve(BLOCK_BYTES)) return undefined
        this.blocks.push(this.pool.take())
        this.fill = 0
      }
      const block = this.blocks[this.blocks.length - 1]!
      const n = Math.min(BLOCK_BYTES - this.fill, chunk.length - at)
      chunk.copy(block, this.fill, at, at + n)
      views.push(block.subarray(this.fill, this.fill + n))
      this.fill += n
      at += n
    }
    return views
  }

  /** Hands every block back; the views into them must not be read after this. */
  release(): void {
    this.pool.give(this.blocks)
    this.blocks.length = 0
    this.fill = BLOCK_BYTES
  }
}
