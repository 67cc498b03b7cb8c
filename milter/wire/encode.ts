/**
 * Typed frames to bytes: responses (what the milter writes) and commands
 * (what the test client and the benchmark write). Each frame is built in one
 * allocation; encodeAll joins many into one buffer so a batch goes out in a
 * single socket write.
 */
import { Cmd, Family, LENGTH_BYTES, Resp } from './codes'
import type { MilterCommand, MilterResponse, SimpleResponseType } from './types'

type Part = Buffer | string | { u32: number } | { u16: number } | { byte: number }

function cstr(s: string): Buffer {
  const b = Buffer.from(s + '\0', 'utf8')
  // A NUL inside would end the string early on the other side: refuse it.
  if (b.indexOf(0) !== b.length - 1) throw new RangeError(`milter string contains NUL: ${JSON.stringify(s)}`)
  return b
}

function partLength(p: Part): number {
  if (Buffer.isBuffer(p)) return p.length
  if (typeof p === 'string') throw new Error('strings must be converted with cstr first')
  return 'u32' in p ? 4 : 'u16' in p ? 2 : 1
}

function writePart(out: Buffer, at: number, p: Part): number {
  if (Buffer.isBuffer(p)) return at + p.copy(out, at)
  if (typeof p === 'string') throw new Error('unreachable')
  if ('u32' in p) return out.writeUInt32BE(p.u32 >>> 0, at)
  if ('u16' in p) return out.writeUInt16BE(p.u16, at)
  return out.writeUInt8(p.byte, at)
}

/** One frame: u32 length (command byte + data), command byte, data. */
export function frame(code: number, parts: Part[] = []): Buffer {
  const ready = parts.map((p) => (typeof p === 'string' ? cstr(p) : p))
  const dataLength = ready.reduce((n, p) => n + partLength(p), 0)
  const out = Buffer.allocUnsafe(LENGTH_BYTES + 1 + dataLength)
  out.writeUInt32BE(1 + dataLength, 0)
  out[LENGTH_BYTES] = code
  let at = LENGTH_BYTES + 1
  for (const p of ready) at = writePart(out, at, p)
  return out
}

// ---------------------------------------------------------------- responses

const SIMPLE: Record<SimpleResponseType, Buffer> = {
  continue: frame(Resp.continue),
  accept: frame(Resp.accept),
  reject: frame(Resp.reject),
  tempfail: frame(Resp.tempfail),
  discard: frame(Resp.discard),
  shutdown: frame(Resp.shutdown),
  connectionFailure: frame(Resp.connectionFailure),
  progress: frame(Resp.progress),
  skip: frame(Resp.skip),
}

const optional = (s: string | undefined): Part[] => (s === undefined ? [] : [s])

export function encodeResponse(r: MilterResponse): Buffer {
  switch (r.type) {
    case 'optneg':
      return frame(Resp.optneg, [
        { u32: r.version },
        { u32: r.actions },
        { u32: r.protocol },
        ...r.symbolLists.flatMap((l): Part[] => [{ u32: l.stage }, l.macros]),
      ])
    case 'replyCode':
      return frame(Resp.replyCode, [r.text])
    case 'quarantine':
      return frame(Resp.quarantine, [r.reason])
    case 'addHeader':
      return frame(Resp.addHeader, [r.name, r.value])
    case 'insertHeader':
      return frame(Resp.insertHeader, [{ u32: r.index }, r.name, r.value])
    case 'changeHeader':
      return frame(Resp.changeHeader, [{ u32: r.index }, r.name, r.value])
    case 'changeSender':
      return frame(Resp.changeSender, [r.sender, ...optional(r.args)])
    case 'addRecipient':
      return frame(Resp.addRecipient, [r.recipient])
    case 'addRecipientWithArgs':
      return frame(Resp.addRecipientWithArgs, [r.recipient, ...optional(r.args)])
    case 'deleteRecipient':
      return frame(Resp.deleteRecipient, [r.recipient])
    case 'replaceBody':
      return frame(Resp.replaceBody, [r.chunk])
    default:
      return SIMPLE[r.type]
  }
}

/** Many frames as one buffer (one write, so Nagle/delayed-ACK never splits a batch). */
export function encodeAll<T>(items: readonly T[], encodeOne: (item: T) => Buffer): Buffer {
  if (items.length === 1) return encodeOne(items[0]!)
  return Buffer.concat(items.map(encodeOne))
}

// ---------------------------------------------------------------- commands

export function encodeCommand(c: MilterCommand): Buffer {
  switch (c.type) {
    case 'optneg':
      return frame(Cmd.optneg, [{ u32: c.version }, { u32: c.actions }, { u32: c.protocol }])
    case 'macro':
      return frame(Cmd.macro, [{ byte: c.command }, ...c.macros.flat()])
    case 'connect':
      if (c.family === 'unknown') return frame(Cmd.connect, [c.host, { byte: Family.unknown }])
      return frame(Cmd.connect, [c.host, { byte: Family[c.family] }, { u16: c.port }, c.address])
    case 'helo':
      return frame(Cmd.helo, [c.name])
    case 'mail':
      return frame(Cmd.mail, c.args)
    case 'rcpt':
      return frame(Cmd.rcpt, c.args)
    case 'header':
      return frame(Cmd.header, [c.name, c.value])
    case 'body':
      return frame(Cmd.body, [c.chunk])
    case 'endOfMessage':
      return frame(Cmd.endOfMessage, [c.chunk])
    case 'unknown':
      return frame(Cmd.unknown, [c.command])
    default:
      return frame(Cmd[c.type])
  }
}
