/**
 * One read buffer for every milter socket of the process. By default Node
 * reads each socket into a fresh 64 KiB buffer per read, and those live
 * until V8's next collection: under a flood of large bodies they were tens
 * of MB of garbage (bench/README.md, "Stop 22: memory under attack"). Node's
 * own `onread` option of net.Socket reads into a buffer the caller gives
 * instead, but a server's accepted sockets cannot take options; so the
 * same fields that option sets are set on the accepted socket (found by
 * their names on a probe socket built with `onread`, never assumed), and
 * its handle is told to read into the shared buffer (useUserBuffer, what
 * that option calls). Where this Node does not have them, the socket keeps
 * its `data` events: nothing changes but memory.
 *
 * A chunk handed over is a view of the shared buffer, valid only until the
 * callback returns: whatever is kept past it is copied (isSharedRead).
 */
import * as net from 'node:net'

const READ_BYTES = 64 * 1024
const shared = Buffer.allocUnsafeSlow(READ_BYTES)

interface OnreadFields {
  buffer: symbol
  callback: symbol
  generator: symbol
}

let fields: OnreadFields | null | undefined

function probe(): OnreadFields | null {
  const buffer = Buffer.alloc(1)
  const callback = () => true
  // @types/node does not list onread for the constructor (Node documents it for net.connect).
  const s = new net.Socket({ onread: { buffer, callback } } as net.SocketConstructorOpts)
  const find = (name: string, value: unknown) =>
    Object.getOwnPropertySymbols(s).find(
      (k) => k.description === name && (s as unknown as Record<symbol, unknown>)[k] === value,
    )
  const b = find('kBuffer', buffer)
  const c = find('kBufferCb', callback)
  const g = find('kBufferGen', null)
  s.destroy()
  return b && c && g ? { buffer: b, callback: c, generator: g } : null
}

interface ReadHandle {
  useUserBuffer?: (b: Uint8Array) => void
}

/**
 * Delivers `socket`'s reads to `onData` as views of the shared buffer (see
 * above). False if this Node cannot: then the caller listens for `data`.
 */
export function readIntoShared(socket: net.Socket, onData: (chunk: Buffer) => void): boolean {
  fields ??= probe()
  const handle = (socket as unknown as { _handle?: ReadHandle | null })._handle
  if (!fields || typeof handle?.useUserBuffer !== 'function') return false
  const s = socket as unknown as Record<symbol, unknown>
  s[fields.buffer] = shared
  s[fields.generator] = null
  s[fields.callback] = (n: number) => {
    onData(shared.subarray(0, n))
  }
  handle.useUserBuffer(shared)
  return true
}

/** Whether `b` lies in the shared read buffer (and must be copied to be kept). */
export function isSharedRead(b: Buffer): boolean {
  return b.buffer === shared.buffer
}
