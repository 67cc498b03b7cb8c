/**
 * Frees a large buffer now instead of at V8's next collection. Checking a
 * large message joins it into one buffer (milter/message.ts rawMessage); V8
 * collects such garbage only once external memory has grown by tens of MB
 * since its last collection, so under a flood of 10 MB messages the joins
 * of finished messages were most of what serve held over [milter]
 * max_held_bytes (bench/README.md, "Stop 22: memory under attack").
 * Detaching the buffer (ArrayBuffer.prototype.transfer to length 0, ES2024)
 * gives its memory back at once; any view of it left anywhere reads as
 * empty, never as other bytes.
 */
import * as v8 from 'node:v8'
import * as vm from 'node:vm'

/** Smaller buffers are left to the collector (normal mail: nothing changes). */
export const RELEASE_MIN_BYTES = 1024 * 1024

type Transfer = (this: ArrayBuffer, length: number) => ArrayBuffer

let transfer: Transfer | null | undefined

/**
 * Node 22+ has transfer; Node 20's V8 has it behind a flag, which takes
 * effect in a context made after it is set: the function is taken from such
 * a context (it works on any realm's ArrayBuffer). Null: not available.
 */
function transferFunction(): Transfer | null {
  if (transfer !== undefined) return transfer
  const own = (ArrayBuffer.prototype as { transfer?: Transfer }).transfer
  if (typeof own === 'function') return (transfer = own)
  try {
    v8.setFlagsFromString('--harmony-rab-gsab-transfer')
    const f: unknown = vm.runInNewContext('ArrayBuffer.prototype.transfer')
    transfer = typeof f === 'function' ? (f as Transfer) : null
  } catch {
    transfer = null
  }
  return transfer
}

/**
 * Frees `buf`'s memory now if it is at least RELEASE_MIN_BYTES and owns its
 * whole ArrayBuffer (never a pooled or shared one); true if it did.
 */
export function releaseNow(buf: Buffer): boolean {
  if (buf.length < RELEASE_MIN_BYTES || buf.byteOffset !== 0 || buf.byteLength !== buf.buffer.byteLength)
    return false
  if (
    !(buf.buffer instanceof ArrayBuffer) &&
    Object.prototype.toString.call(buf.buffer) !== '[object ArrayBuffer]'
  )
    return false
  const t = transferFunction()
  if (!t) return false
  t.call(buf.buffer as ArrayBuffer, 0)
  return true
}
