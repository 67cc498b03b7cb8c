/**
 * Netstrings (D. J. Bernstein), the framing of Postfix's socketmap protocol
 * (socketmap_table(5)): `<decimal length>:<bytes>,`. Pure: bytes in, whole
 * payloads out. The length is capped before anything is buffered, and a
 * missing `:` or `,` is an error, so a stranger cannot make us allocate or
 * wait for more than the cap.
 */

export class NetstringError extends Error {
  readonly code = 'LINKSEC_NETSTRING'
  constructor(message: string) {
    super(message)
    this.name = 'NetstringError'
  }
}

/** socketmap_table(5): a reply is at most 100000 bytes; a request is a map name and a key. */
export const SOCKETMAP_MAX_REPLY = 100_000
const DEFAULT_MAX_REQUEST = 10_000

const COLON = 0x3a
const COMMA = 0x2c

export function encodeNetstring(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  return Buffer.concat([Buffer.from(`${body.length}:`, 'ascii'), body, Buffer.from(',')])
}

/**
 * Incremental decoder: push() any chunk, get every payload it completes.
 * After an error the decoder stays broken (the stream has lost framing).
 */
export class NetstringDecoder {
  private buf: Buffer = Buffer.alloc(0)
  private failed: NetstringError | undefined
  private readonly maxDigits: number

  constructor(private readonly maxLength = DEFAULT_MAX_REQUEST) {
    this.maxDigits = String(maxLength).length
  }

  push(chunk: Buffer): Buffer[] {
    if (this.failed) throw this.failed
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    const out: Buffer[] = []
    try {
      for (let msg = this.next(); msg; msg = this.next()) out.push(msg)
    } catch (e) {
      this.failed = e as NetstringError
      throw e
    }
    return out
  }

  /** Bytes held for an unfinished netstring. */
  get pending(): number {
    return this.buf.length
  }

  private next(): Buffer | undefined {
    const colon = this.buf.indexOf(COLON)
    const digitsEnd = colon === -1 ? this.buf.length : colon
    const digits = this.buf.subarray(0, digitsEnd).toString('latin1')
    if (!/^\d*$/.test(digits)) throw new NetstringError('netstring length is not a decimal number')
    if (digits.length > 1 && digits.startsWith('0'))
      throw new NetstringError('netstring length has a leading zero')
    if (digits.length > this.maxDigits)
      throw new NetstringError(`netstring longer than ${this.maxLength} bytes`)
    if (colon === -1) return undefined
    if (digits.length === 0) throw new NetstringError('netstring without a length')
    const len = Number(digits)
    if (len > this.maxLength) throw new NetstringError(`netstring of ${len} bytes exceeds ${this.maxLength}`)
    const end = colon + 1 + len
    if (this.buf.length <= end) return undefined
    if (this.buf[end] !== COMMA) throw new NetstringError('netstring does not end with ","')
    const payload = Buffer.from(this.buf.subarray(colon + 1, end))
    this.buf = this.buf.subarray(end + 1)
    return payload
  }
}

/** Decodes exactly one netstring that fills BUF (tests, fuzzing). */
export function decodeNetstring(buf: Buffer, maxLength = DEFAULT_MAX_REQUEST): Buffer {
  const d = new NetstringDecoder(maxLength)
  const out = d.push(buf)
  if (out.length !== 1 || d.pending !== 0) throw new NetstringError('expected exactly one netstring')
  return out[0]!
}
