/**
 * Properties of the milter codec (fast-check): every frame type survives an
 * encode/decode round trip, any split of the byte stream yields the same
 * frames, and arbitrary bytes yield frames or MilterProtocolError, nothing else.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { silentLogger } from '../../core/log'
import { createMilterApp } from '../../milter/app'
import { MilterSession } from '../../milter/session'
import { CommandDecoder, ResponseDecoder } from '../../milter/wire/decode'
import { encodeCommand, encodeResponse } from '../../milter/wire/encode'
import { MilterProtocolError } from '../../milter/wire/errors'
import type { MilterCommand, MilterResponse, SimpleResponseType } from '../../milter/wire/types'
import { defaultConfig } from '../../core/config'
import { createRuntime } from '../../core/runtime'
import { createMetrics } from '../../core/metrics'

const MAX = 1 << 20
const text = fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(/\0/g, ''))
const u32 = fc.integer({ min: 0, max: 0xffffffff })
const bytes = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a))
const argv = fc.array(text, { minLength: 1, maxLength: 5 })

/** fc.record builds null-prototype objects; decoded frames are plain objects. */
function plain<T extends object>(o: T): T {
  const out = { ...o }
  if ('symbolLists' in out)
    (out as { symbolLists: object[] }).symbolLists = (out as { symbolLists: object[] }).symbolLists.map(
      (l) => ({ ...l }),
    )
  return out
}

const command: fc.Arbitrary<MilterCommand> = fc
  .oneof(
    fc.record({ type: fc.constant('optneg' as const), version: u32, actions: u32, protocol: u32 }),
    fc.record({
      type: fc.constant('macro' as const),
      command: fc.integer({ min: 0, max: 255 }),
      macros: fc.array(fc.tuple(text, text), { maxLength: 5 }),
    }),
    fc.record({ type: fc.constant('connect' as const), host: text, family: fc.constant('unknown' as const) }),
    fc.record({
      type: fc.constant('connect' as const),
      host: text,
      family: fc.constantFrom('inet4' as const, 'inet6' as const, 'unix' as const),
      port: fc.integer({ min: 0, max: 65535 }),
      address: text,
    }),
    fc.record({ type: fc.constant('helo' as const), name: text }),
    fc.record({ type: fc.constant('mail' as const), args: argv }),
    fc.record({ type: fc.constant('rcpt' as const), args: argv }),
    fc.record({ type: fc.constant('header' as const), name: text, value: text }),
    fc.record({ type: fc.constant('body' as const), chunk: bytes }),
    fc.record({ type: fc.constant('endOfMessage' as const), chunk: bytes }),
    fc.record({ type: fc.constant('unknown' as const), command: text }),
    fc.constantFrom<MilterCommand>(
      { type: 'data' },
      { type: 'eoh' },
      { type: 'abort' },
      { type: 'quit' },
      { type: 'quitNewConnection' },
    ),
  )
  .map(plain)

const simple: SimpleResponseType[] = [
  'continue',
  'accept',
  'reject',
  'tempfail',
  'discard',
  'shutdown',
  'connectionFailure',
  'progress',
  'skip',
]
const optionalArgs = fc.option(text, { nil: undefined })
/** fc.record yields `args: undefined`; the decoder omits the key: compare like with like. */
function withArgs<T extends { args?: string }>(r: T): T {
  if (r.args !== undefined) return r
  const { args: _args, ...rest } = r
  return rest as T
}

const response: fc.Arbitrary<MilterResponse> = fc
  .oneof(
    fc.record({
      type: fc.constant('optneg' as const),
      version: u32,
      actions: u32,
      protocol: u32,
      symbolLists: fc.array(fc.record({ stage: u32, macros: text }), { maxLength: 4 }),
    }),
    fc.constantFrom(...simple).map((type) => ({ type })),
    fc.record({ type: fc.constant('replyCode' as const), text }),
    fc.record({ type: fc.constant('quarantine' as const), reason: text }),
    fc.record({ type: fc.constant('addHeader' as const), name: text, value: text }),
    fc.record({
      type: fc.constantFrom('insertHeader' as const, 'changeHeader' as const),
      index: u32,
      name: text,
      value: text,
    }),
    fc.record({ type: fc.constant('changeSender' as const), sender: text, args: optionalArgs }).map(withArgs),
    fc.record({ type: fc.constant('addRecipient' as const), recipient: text }),
    fc
      .record({ type: fc.constant('addRecipientWithArgs' as const), recipient: text, args: optionalArgs })
      .map(withArgs),
    fc.record({ type: fc.constant('deleteRecipient' as const), recipient: text }),
    fc.record({ type: fc.constant('replaceBody' as const), chunk: bytes }),
  )
  .map(plain)

/** Splits a buffer at the given (sorted, deduplicated) offsets. */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b)
  const out: Buffer[] = []
  let at = 0
  for (const p of points) {
    out.push(buf.subarray(at, p))
    at = p
  }
  out.push(buf.subarray(at))
  return out
}

describe('milter codec properties', () => {
  it('every command survives encode -> decode', () => {
    fc.assert(
      fc.property(command, (c) => {
        assert.deepEqual(new CommandDecoder(MAX).push(encodeCommand(c)), [c])
      }),
      { numRuns: 2000 },
    )
  })

  it('every response survives encode -> decode', () => {
    fc.assert(
      fc.property(response, (r) => {
        assert.deepEqual(new ResponseDecoder(MAX).push(encodeResponse(r)), [r])
      }),
      { numRuns: 2000 },
    )
  })

  it('any split of the byte stream yields the same commands', () => {
    fc.assert(
      fc.property(
        fc.array(command, { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (cmds, cuts) => {
          const stream = Buffer.concat(cmds.map(encodeCommand))
          const d = new CommandDecoder(MAX)
          const got = split(stream, cuts).flatMap((part) => d.push(part))
          assert.deepEqual(got, cmds)
          assert.equal(d.pendingBytes, 0)
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('with a reused receive buffer, any split yields the same commands, and what the caller copies stays intact', () => {
    // Body frames as large as Postfix sends (64 KB) so they span reads, between small ones.
    const big = fc
      .integer({ min: 1, max: 65_535 })
      .chain((n) => fc.integer({ min: 0, max: 255 }).map((b) => Buffer.alloc(n, b)))
      .map((chunk): MilterCommand => ({ type: 'body', chunk }))
    fc.assert(
      fc.property(
        fc.array(fc.oneof(command, big), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (cmds, cuts) => {
          const stream = Buffer.concat(cmds.map(encodeCommand))
          const d = new CommandDecoder(MAX, { reuse: true })
          const got: MilterCommand[] = []
          for (const part of split(stream, cuts)) {
            // As the connection does: a chunk in the reused buffer is copied before the next push.
            for (const c of d.push(part))
              got.push('chunk' in c && d.isTransient(c.chunk) ? { ...c, chunk: Buffer.from(c.chunk) } : c)
          }
          assert.deepEqual(got, cmds)
          assert.equal(d.pendingBytes, 0)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('a 64 KB body frame split at every byte position decodes the same, reused buffer or not', () => {
    const frames = [0x41, 0x42, 0x43].map((b) =>
      encodeCommand({ type: 'body', chunk: Buffer.alloc(65_535, b) }),
    )
    const stream = Buffer.concat(frames)
    const want = Buffer.concat([0x41, 0x42, 0x43].map((b) => Buffer.alloc(65_535, b)))
    for (let cut = 1; cut < frames[0]!.length; cut++) {
      for (const reuse of [false, true]) {
        const d = new CommandDecoder(MAX, { reuse })
        const kept: Buffer[] = []
        // Reads of `cut` bytes at most, as a socket delivers them.
        for (let at = 0; at < stream.length; at += cut)
          for (const c of d.push(stream.subarray(at, at + cut)))
            if (c.type === 'body') kept.push(d.isTransient(c.chunk) ? Buffer.from(c.chunk) : c.chunk)
        assert.ok(Buffer.concat(kept).equals(want), `cut ${cut}, reuse ${reuse}`)
      }
      if (cut > 64) cut += 997 // every small position, then a spread of larger ones (a bounded run)
    }
  })

  it('any split of the byte stream yields the same responses', () => {
    fc.assert(
      fc.property(
        fc.array(response, { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (resps, cuts) => {
          const stream = Buffer.concat(resps.map(encodeResponse))
          const d = new ResponseDecoder(MAX)
          assert.deepEqual(
            split(stream, cuts).flatMap((part) => d.push(part)),
            resps,
          )
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('random bytes yield commands or MilterProtocolError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 8 }), (raw, cuts) => {
        const d = new CommandDecoder(1024)
        const r = new ResponseDecoder(1024)
        for (const decoder of [d, r]) {
          try {
            for (const part of split(Buffer.from(raw), cuts)) decoder.push(part)
          } catch (e) {
            assert.ok(e instanceof MilterProtocolError, `unexpected ${(e as Error).stack}`)
          }
        }
      }),
      { numRuns: 5000 },
    )
  })

  it('random frames with valid headers decode or fail with MilterProtocolError', () => {
    const frame = fc
      .tuple(fc.constantFrom(...'ODCHMRTLNBEUAQKcarty'.split('')), fc.uint8Array({ maxLength: 40 }))
      .map(([code, payload]) => {
        const head = Buffer.alloc(5)
        head.writeUInt32BE(payload.length + 1)
        head[4] = code.charCodeAt(0)
        return Buffer.concat([head, payload])
      })
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 6 }), (frames) => {
        try {
          new CommandDecoder(MAX).push(Buffer.concat(frames))
        } catch (e) {
          assert.ok(e instanceof MilterProtocolError, `unexpected ${(e as Error).stack}`)
        }
      }),
      { numRuns: 3000 },
    )
  })

  it('a session fed any command sequence answers or raises MilterProtocolError, nothing else', async () => {
    const rt = createRuntime(defaultConfig(), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    const app = createMilterApp(rt)
    await fc.assert(
      fc.asyncProperty(fc.array(command, { maxLength: 15 }), async (cmds) => {
        const s = new MilterSession(app, { id: 1, log: silentLogger })
        try {
          for (const c of [
            { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff } as const,
            ...cmds,
          ])
            await s.handle(c)
        } catch (e) {
          assert.ok(e instanceof MilterProtocolError, `unexpected ${(e as Error).stack}`)
        }
      }),
      { numRuns: 1000 },
    )
  })
})
