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

export class FrameDecoder {
  /** The 4-byte length field of a frame that began in an earlier chunk. */
  private readonly head = Buffer.alloc(LENGTH_BYTES)
  private headFill = 0
  /** Its length once known (command byte + data). */
  private length = 0
  /** Pieces of that frame's command byte and data, as views of the chunks they came in. */
  private parts: Buffer[] = []
  private partBytes = 0
  private failed = false

  /** @param maxFrameBytes largest accepted length field (command byte + data). */
  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes received but not yet part of a whole frame. */
  get pendingBytes(): number {
    return this.headFill + this.partBytes
  }

  /**
   * Feeds one chunk; returns every frame it completes, in order. A frame
   * that lies inside one chunk is a view of that chunk (no copy); a frame
   * that spans chunks is copied once, into a buffer of exactly its size, so
   * a body chunk the session keeps holds its own bytes and nothing of its
   * neighbours. (Postfix's body frames are 65,540 bytes and a socket read
   * at most 65,536: every one spans two reads. Joining the unread tail to
   * each new read instead made every kept 64 KB body chunk hold a buffer
   * of up to twice that: bench/memory.ts, big bodies.)
   */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw new MilterProtocolError('malformed_frame', 'decoder used after a protocol error')
    const frames: Frame[] = []
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
    }
    const n = Math.min(this.length - this.partBytes, chunk.length - at)
    if (n > 0) this.keepPart(chunk.subarray(at, at + n))
    at += n
    if (this.partBytes === this.length) {
      const frame = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length)
      // A single piece is a view of a larger read: copy it so the frame owns exactly its bytes.
      const own = this.parts.length === 1 ? Buffer.from(frame) : frame
      frames.push({ code: own[0]!, payload: own.subarray(1) })
      this.headFill = 0
      this.length = 0
      this.parts = []
      this.partBytes = 0
    }
    return at
  }

  /** A peer dripping a few bytes per read must not leave thousands of tiny pieces: join them now and then. */
  private keepPart(piece: Buffer): void {
    this.parts.push(piece)
    this.partBytes += piece.length
    if (this.parts.length >= 64) this.parts = [Buffer.concat(this.parts, this.partBytes)]
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
  ) {
    this.frames = new FrameDecoder(maxFrameBytes)
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
  constructor(maxFrameBytes: number) {
    super(maxFrameBytes, decodeCommand)
  }
}

/** Typed responses out: what the MTA side (the test client) reads. */
export class ResponseDecoder extends TypedDecoder<MilterResponse> {
  constructor(maxFrameBytes: number) {
    super(maxFrameBytes, decodeResponse)
  }
}
