/**
 * A bounds-checked cursor over one frame's payload. Every read that would run
 * past the end, and every string without its NUL terminator, throws
 * MilterProtocolError('malformed_frame'): the codec never reads out of bounds.
 */
import { MilterProtocolError } from './errors'

export class PayloadReader {
  private at = 0

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.at
  }

  private need(n: number, field: string): void {
    if (this.remaining < n) this.fail(`${field} needs ${n} bytes, ${this.remaining} left`)
  }

  fail(detail: string): never {
    throw new MilterProtocolError('malformed_frame', `malformed ${this.what}: ${detail}`)
  }

  u32(field: string): number {
    this.need(4, field)
    const v = this.buf.readUInt32BE(this.at)
    this.at += 4
    return v
  }

  u16(field: string): number {
    this.need(2, field)
    const v = this.buf.readUInt16BE(this.at)
    this.at += 2
    return v
  }

  byte(field: string): number {
    this.need(1, field)
    return this.buf[this.at++]!
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(field: string): string {
    const nul = this.buf.indexOf(0, this.at)
    if (nul < 0) this.fail(`${field} has no NUL terminator`)
    const s = this.buf.toString('utf8', this.at, nul)
    this.at = nul + 1
    return s
  }

  /** NUL-terminated strings up to the end of the payload (libmilter's argv). */
  cstrings(field: string): string[] {
    const out: string[] = []
    while (this.remaining > 0) out.push(this.cstring(field))
    return out
  }

  rest(): Buffer {
    const b = this.buf.subarray(this.at)
    this.at = this.buf.length
    return b
  }

  /** Asserts the payload was read completely (left-over bytes mean a confused peer). */
  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected trailing bytes`)
  }
}
