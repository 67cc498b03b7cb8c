/**
 * Bytes in, whole typed frames out, no I/O. FrameDecoder takes chunks as they
 * arrive and yields complete frames; the length is checked against the cap
 * before any payload is buffered. decodeCommand/decodeResponse interpret a
 * frame. The only error thrown here is MilterProtocolError.
 */
import { Cmd, CMD_BY_CODE, FAMILY_BY_CODE, LENGTH_BYTES, Resp, RESP_BY_CODE, describeCode } from './codes'
import { MilterProtocolError } from './errors'
import { PayloadReader } from './reader'
import type { ConnectCommand, Frame, MacroPairs, MilterCommand, MilterResponse, SymbolList } from './types'

/**
 * Largest frame assembled in the reused buffer of a `reuse` decoder: one
 * Postfix body frame (SMFIR body chunks are at most 65,535 bytes, plus the
 * command byte) with room to spare. A larger frame gets a buffer of its own.
 */
const REUSED_FRAME_BYTES = 65_540 + 60

export interface FrameDecoderOptions {
  /**
   * Frames that span socket reads are assembled in one buffer the decoder
   * keeps and reuses, instead of a new buffer per frame: such a frame (and
   * a body chunk decoded from it) is then valid only until the next push().
   * The caller copies what it keeps (isTransient tells which), and copies
   * any such frame it still queues before pushing again. Off by default:
   * the test client keeps what it decodes.
   */
  reuse?: boolean
}

export class FrameDecoder {
  /** The 4-byte length field of a frame that began in an earlier chunk. */
  private readonly head = Buffer.alloc(LENGTH_BYTES)
  private headFill = 0
  /** Its length once known (command byte + data). */
  private length = 0
  /** That frame's command byte and data so far, copied as they arrive. */
  private pending?: Buffer
  private partBytes = 0
  /**
   * The buffers reused for frames that span reads (reuse mode), dropped when
   * nothing is pending. Two: one push can complete a frame in one (the
   * caller has yet to read it) and begin the next frame in the other.
   */
  private reused: Buffer[] = []
  /** The reused buffer holding a frame this push completed. */
  private busy?: Buffer
  private failed = false
  private readonly reuse: boolean

  /** @param maxFrameBytes largest accepted length field (command byte + data). */
  constructor(
    private readonly maxFrameBytes: number,
    opts: FrameDecoderOptions = {},
  ) {
    this.reuse = opts.reuse ?? false
  }

  /** Bytes received but not yet part of a whole frame. */
  get pendingBytes(): number {
    return this.headFill + this.partBytes
  }

  /** Whether `b` lies in the buffer this decoder reuses (valid only until the next push). */
  isTransient(b: Buffer): boolean {
    return this.reused.some((r) => r.buffer === b.buffer)
  }

  /**
   * Feeds one chunk; returns every frame it completes, in order. A frame
   * that lies inside one chunk is a view of that chunk (no copy). A frame
   * that spans chunks is copied piece by piece as it arrives into a buffer
   * of exactly its size, so a body chunk the session keeps holds its own
   * bytes and nothing of its neighbours (Postfix's body frames are 65,540
   * bytes and a socket read at most 65,536: every one spans two reads;
   * joining the unread tail to each new read instead made every kept 64 KB
   * body chunk hold a buffer of up to twice that: bench/memory.ts, big
   * bodies). In reuse mode that buffer is the decoder's own, reused frame
   * after frame, and only what the session keeps is copied, once: under
   * 40 concurrent 10 MB bodies a new 64 KB buffer per frame was ~400 MB of
   * garbage in a few seconds (bench/README.md, stop 21).
   */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw new MilterProtocolError('malformed_frame', 'decoder used after a protocol error')
    const frames: Frame[] = []
    this.busy = undefined
    try {
      let at = this.pendingBytes ? this.continuePending(chunk, frames) : 0
      while (chunk.length - at >= LENGTH_BYTES) {
        const length = this.checkedLength(chunk.readUInt32BE(at))
        if (chunk.length - at - LENGTH_BYTES < length) break
        const start = at + LENGTH_BYTES
        frames.push({ code: chunk[start]!, payload: chunk.subarray(start + 1, start + length) })
        at = start + length
      }
      if (at < chunk.length) this.continuePending(chunk.subarray(at), frames)
      // An idle connection keeps no buffer (1,000 open sessions would hold 64 KB each); a
      // frame still in one stays valid, since nothing writes to a dropped buffer again.
      if (this.pendingBytes === 0) this.reused = []
    } catch (e) {
      this.failed = true
      throw e
    }
    return frames
  }

  /** Adds the start of `chunk` to the frame under way; returns how many bytes of it were used. */
  private continuePending(chunk: Buffer, frames: Frame[]): number {
    let at = 0
    if (this.headFill < LENGTH_BYTES) {
      const n = Math.min(LENGTH_BYTES - this.headFill, chunk.length)
      chunk.copy(this.head, this.headFill, 0, n)
      this.headFill += n
      at = n
      if (this.headFill < LENGTH_BYTES) return at
      // Checked before any of the frame's data is kept.
      this.length = this.checkedLength(this.head.readUInt32BE(0))
      this.pending = this.frameBuffer(this.length)
    }
    const n = Math.min(this.length - this.partBytes, chunk.length - at)
    if (n > 0) chunk.copy(this.pending!, this.partBytes, at, at + n)
    this.partBytes += n
    at += n
    if (this.partBytes === this.length) {
      const own = this.pending!
      if (this.isTransient(own)) this.busy = own
      frames.push({ code: own[0]!, payload: own.subarray(1, this.length) })
      this.headFill = 0
      this.length = 0
      this.pending = undefined
      this.partBytes = 0
    }
    return at
  }

  /** Where a spanning frame of `length` bytes is assembled. */
  private frameBuffer(length: number): Buffer {
    if (!this.reuse || length > REUSED_FRAME_BYTES) return Buffer.allocUnsafeSlow(length)
    const free = this.reused.find((r) => r !== this.busy)
    if (free) return free
    const fresh = Buffer.allocUnsafeSlow(REUSED_FRAME_BYTES)
    this.reused.push(fresh)
    return fresh
  }

  private checkedLength(length: number): number {
    if (length === 0)
      throw new MilterProtocolError('empty_frame', 'frame length 0 (a frame needs a command byte)')
    if (length > this.maxFrameBytes)
      throw new MilterProtocolError(
        'oversized_frame',
        `frame of ${length} bytes exceeds max_frame_bytes ${this.maxFrameBytes}`,
      )
    return length
  }
}

// ---------------------------------------------------------------- commands

function macroPairs(r: PayloadReader): MacroPairs {
  const strings = r.cstrings('macro')
  if (strings.length % 2 !== 0) r.fail('macro names and values must come in pairs')
  const pairs: MacroPairs = []
  for (let i = 0; i < strings.length; i += 2) pairs.push([strings[i]!, strings[i + 1]!])
  return pairs
}

function decodeConnect(r: PayloadReader): ConnectCommand {
  const host = r.cstring('host')
  const familyCode = r.byte('family')
  const family = FAMILY_BY_CODE.get(familyCode)
  if (!family) r.fail(`unknown address family ${describeCode(familyCode)}`)
  if (family === 'unknown') return { type: 'connect', host, family }
  const port = r.u16('port')
  const address = r.cstring('address')
  return { type: 'connect', host, family, port, address }
}

function nonEmptyArgv(r: PayloadReader, what: string): string[] {
  const args = r.cstrings(what)
  if (args.length === 0) r.fail(`${what} without an address`)
  return args
}

type CommandBody = (r: PayloadReader) => MilterCommand

const COMMAND_DECODERS: Record<keyof typeof Cmd, CommandBody> = {
  optneg: (r) => ({
    type: 'optneg',
    version: r.u32('version'),
    actions: r.u32('actions'),
    protocol: r.u32('protocol'),
  }),
  macro: (r) => ({ type: 'macro', command: r.byte('command code'), macros: macroPairs(r) }),
  connect: decodeConnect,
  helo: (r) => ({ type: 'helo', name: r.cstring('helo name') }),
  mail: (r) => ({ type: 'mail', args: nonEmptyArgv(r, 'MAIL') }),
  rcpt: (r) => ({ type: 'rcpt', args: nonEmptyArgv(r, 'RCPT') }),
  data: () => ({ type: 'data' }),
  header: (r) => ({ type: 'header', name: r.cstring('header name'), value: r.cstring('header value') }),
  eoh: () => ({ type: 'eoh' }),
  body: (r) => ({ type: 'body', chunk: r.rest() }),
  endOfMessage: (r) => ({ type: 'endOfMessage', chunk: r.rest() }),
  unknown: (r) => ({ type: 'unknown', command: r.cstring('unknown command') }),
  abort: () => ({ type: 'abort' }),
  quit: () => ({ type: 'quit' }),
  quitNewConnection: () => ({ type: 'quitNewConnection' }),
}

export function decodeCommand(frame: Frame): MilterCommand {
  const name = CMD_BY_CODE.get(frame.code)
  if (!name) throw new MilterProtocolError('unknown_command', `unknown command ${describeCode(frame.code)}`)
  const r = new PayloadReader(frame.payload, `${name} command`)
  const cmd = COMMAND_DECODERS[name](r)
  r.end()
  return cmd
}

// ---------------------------------------------------------------- responses

function symbolLists(r: PayloadReader): SymbolList[] {
  const lists: SymbolList[] = []
  while (r.remaining > 0) lists.push({ stage: r.u32('symbol list stage'), macros: r.cstring('symbol list') })
  return lists
}

function optionalString(r: PayloadReader, field: string): string | undefined {
  return r.remaining > 0 ? r.cstring(field) : undefined
}

type ResponseBody = (r: PayloadReader) => MilterResponse

const RESPONSE_DECODERS: Record<keyof typeof Resp, ResponseBody> = {
  optneg: (r) => ({
    type: 'optneg',
    version: r.u32('version'),
    actions: r.u32('actions'),
    protocol: r.u32('protocol'),
    symbolLists: symbolLists(r),
  }),
  continue: () => ({ type: 'continue' }),
  accept: () => ({ type: 'accept' }),
  reject: () => ({ type: 'reject' }),
  tempfail: () => ({ type: 'tempfail' }),
  discard: () => ({ type: 'discard' }),
  shutdown: () => ({ type: 'shutdown' }),
  connectionFailure: () => ({ type: 'connectionFailure' }),
  progress: () => ({ type: 'progress' }),
  skip: () => ({ type: 'skip' }),
  replyCode: (r) => ({ type: 'replyCode', text: r.cstring('reply text') }),
  quarantine: (r) => ({ type: 'quarantine', reason: r.cstring('quarantine reason') }),
  addHeader: (r) => ({ type: 'addHeader', name: r.cstring('header name'), value: r.cstring('header value') }),
  insertHeader: (r) => ({
    type: 'insertHeader',
    index: r.u32('index'),
    name: r.cstring('header name'),
    value: r.cstring('header value'),
  }),
  changeHeader: (r) => ({
    type: 'changeHeader',
    index: r.u32('index'),
    name: r.cstring('header name'),
    value: r.cstring('header value'),
  }),
  changeSender: (r) => withArgs({ type: 'changeSender', sender: r.cstring('sender') }, r),
  addRecipient: (r) => ({ type: 'addRecipient', recipient: r.cstring('recipient') }),
  addRecipientWithArgs: (r) =>
    withArgs({ type: 'addRecipientWithArgs', recipient: r.cstring('recipient') }, r),
  deleteRecipient: (r) => ({ type: 'deleteRecipient', recipient: r.cstring('recipient') }),
  replaceBody: (r) => ({ type: 'replaceBody', chunk: r.rest() }),
}

function withArgs<T extends MilterResponse & { args?: string }>(resp: T, r: PayloadReader): T {
  const args = optionalString(r, 'ESMTP arguments')
  return args === undefined ? resp : { ...resp, args }
}

function decodeResponse(frame: Frame): MilterResponse {
  const name = RESP_BY_CODE.get(frame.code)
  if (!name) throw new MilterProtocolError('unknown_command', `unknown response ${describeCode(frame.code)}`)
  const r = new PayloadReader(frame.payload, `${name} response`)
  const resp = RESPONSE_DECODERS[name](r)
  r.end()
  return resp
}

/** Chunks in, typed messages out: a FrameDecoder plus one frame interpreter. */
class TypedDecoder<T> {
  private readonly frames: FrameDecoder

  constructor(
    maxFrameBytes: number,
    private readonly interpret: (frame: Frame) => T,
    opts?: FrameDecoderOptions,
  ) {
    this.frames = new FrameDecoder(maxFrameBytes, opts)
  }

  /** See FrameDecoderOptions.reuse. */
  isTransient(b: Buffer): boolean {
    return this.frames.isTransient(b)
  }

  push(chunk: Buffer): T[] {
    return this.frames.push(chunk).map(this.interpret)
  }

  get pendingBytes(): number {
    return this.frames.pendingBytes
  }
}

/** Typed commands out: what the milter side reads. */
export class CommandDecoder extends TypedDecoder<MilterCommand> {
  constructor(maxFrameBytes: number, opts?: FrameDecoderOptions) {
    super(maxFrameBytes, decodeCommand, opts)
  }
}

/** Typed responses out: what the MTA side (the test client) reads. */
export class ResponseDecoder extends TypedDecoder<MilterResponse> {
  constructor(maxFrameBytes: number) {
    super(maxFrameBytes, decodeResponse)
  }
}
