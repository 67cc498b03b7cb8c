/**
 * One accepted milter socket: bytes -> decoder -> session -> one write per
 * batch. Commands that arrive together (Postfix batches events it expects no
 * reply to) are answered together, and the end-of-message actions plus the
 * final reply always leave in a single write, so neither Nagle nor delayed
 * ACKs can split them. A protocol fault or a stalled peer closes this
 * connection only, with a log line and a counter. Nothing thrown while
 * answering leaves this class: a response the codec refuses (a NUL in a
 * value) becomes a 451 for its message, and an error that escapes a handler
 * altogether is handed back here by the process guard (core/guard.ts,
 * through runContained) and answered 451 for this session only.
 */
import type * as net from 'node:net'
import { describeError } from '../core/errors'
import { runContained, type ContainmentOwner } from '../core/guard'
import type { LogLimiter } from '../core/log-limit'
import type { Adapter } from '../core/metrics'
import type { Runtime } from '../core/runtime'
import { tempfail } from '../core/verdict'
import type { SessionLimits } from './limits'
import { verdictResponse } from './reply'
import { isSharedRead, readIntoShared } from './read-buffer'
import { MilterSession, type MilterHandler } from './session'
import { CommandDecoder } from './wire/decode'
import { encodeResponse } from './wire/encode'
import { MilterProtocolError, isMilterProtocolError } from './wire/errors'
import { MODIFICATION_TYPES, type MilterCommand, type MilterResponse } from './wire/types'

/** What a message gets when one of its responses cannot be written (e.g. a value with a NUL). */
const UNWRITABLE = encodeResponse(
  verdictResponse(
    tempfail(
      451,
      '4.3.0',
      'linksec could not write its answer for this message (a value it may not send); please try again later',
      'unwritable_response',
    ),
  ),
)

/** What the listener shares with each of its connections. */
export interface ConnectionContext {
  limits: SessionLimits
  /** Rate-limits the log lines of closed connections (an attacker can cause many). */
  logLimit: LogLimiter
}

export class MilterConnection implements ContainmentOwner {
  readonly adapter: Adapter = 'milter'

  readonly session: MilterSession
  private readonly decoder: CommandDecoder
  private readonly queue: MilterCommand[] = []
  private pumping = false
  private awaitingHandler = false
  private draining = false
  private finished = false
  private negotiationTimer?: NodeJS.Timeout
  private frameTimer?: NodeJS.Timeout
  private sessionTimer?: NodeJS.Timeout
  private graceTimer?: NodeJS.Timeout

  constructor(
    private readonly rt: Runtime,
    private readonly socket: net.Socket,
    handler: MilterHandler,
    id: number,
    private readonly onClose: (c: MilterConnection) => void,
    private readonly ctx: ConnectionContext,
  ) {
    this.decoder = new CommandDecoder(rt.config.milter.max_frame_bytes, { reuse: true })
    this.session = new MilterSession(handler, {
      id,
      log: rt.log,
      onInternalError: (stage) => rt.metrics.internalErrors.inc({ adapter: 'milter', stage }),
      limits: ctx.limits,
      onMessageEnd: () => this.watchSession(),
      isTransient: (chunk) => this.isTransient(chunk),
    })
    this.watchSession()
    this.negotiationTimer = setTimeout(
      () => runContained(this, () => this.negotiationExpired()),
      rt.config.milter.negotiation_timeout_ms,
    )
    socket.setNoDelay(true)
    socket.setTimeout(rt.config.milter.idle_timeout_ms)
    // Everything a command starts runs on behalf of this connection (core/guard.ts).
    const onData = (chunk: Buffer) => runContained(this, () => this.onData(chunk))
    if (!readIntoShared(socket, onData)) socket.on('data', onData)
    socket.on('timeout', () => runContained(this, () => this.onIdle()))
    socket.on('error', (e) => rt.log.debug('milter socket error', { session: id, error: describeError(e) }))
    socket.on('close', () => this.closed())
  }

  get label(): string {
    return `milter session ${this.session.id}`
  }

  /**
   * An error escaped a handler of this session (the process guard calls
   * this): what is in flight answers 451; with nothing in flight the
   * session's state cannot be trusted, so the connection closes and the MTA
   * applies its default action (tempfail in examples/postfix).
   */
  contain(e: unknown): void {
    if (this.finished || this.session.abortInFlight(e)) return
    this.fail(e)
  }

  /** Finish the message in flight, then close; an idle connection closes now. */
  drain(): void {
    this.draining = true
    this.endIfIdle()
  }

  destroy(): void {
    this.socket.destroy()
  }

  /** Option negotiation is done (an MTA that connected and said nothing yet is not). */
  get negotiated(): boolean {
    return this.session.negotiated !== undefined
  }

  /** Closes a connection that never negotiated (the listener makes room for a new one). */
  evict(): void {
    this.fail(
      new MilterProtocolError('negotiation_timeout', 'evicted: never negotiated, and the listener is full'),
    )
  }

  private negotiationExpired(): void {
    this.negotiationTimer = undefined
    if (this.negotiated) return
    const ms = this.rt.config.milter.negotiation_timeout_ms
    this.fail(new MilterProtocolError('negotiation_timeout', `no option negotiation within ${ms} ms`))
  }

  /**
   * A frame must arrive whole within frame_timeout_ms of its first byte: a
   * peer dripping one byte every few seconds never reaches the idle timeout.
   * The clock restarts for each new frame; it does not run while a handler
   * of ours has reading paused.
   */
  private watchFrame(completed: number): void {
    if (this.decoder.pendingBytes === 0) return this.clearFrameTimer()
    if (completed > 0) this.clearFrameTimer()
    this.frameTimer ??= setTimeout(
      () => runContained(this, () => this.frameExpired()),
      this.rt.config.milter.frame_timeout_ms,
    )
  }

  private frameExpired(): void {
    this.frameTimer = undefined
    if (this.decoder.pendingBytes === 0) return
    if (this.awaitingHandler) return this.watchFrame(0)
    const ms = this.rt.config.milter.frame_timeout_ms
    this.fail(
      new MilterProtocolError(
        'frame_timeout',
        `a frame was still incomplete ${ms} ms after it began (${this.decoder.pendingBytes} bytes so far)`,
      ),
    )
  }

  /**
   * Whole frames dripped slowly (one header every few seconds) never trip
   * the frame or idle timeouts, so the connection as a whole must make
   * progress: a message must reach its end within session_timeout_ms of the
   * connection opening or of the previous message's end. The clock restarts
   * at each end of message; a handler of ours still working does not count
   * against the peer (it has its own deadline).
   */
  private watchSession(): void {
    clearTimeout(this.sessionTimer)
    if (this.finished || this.session.closed) return
    this.sessionTimer = setTimeout(
      () => runContained(this, () => this.sessionExpired()),
      this.rt.config.milter.session_timeout_ms,
    )
  }

  /**
   * Out of time: the session drops what it holds and answers 451 4.4.2 to
   * whatever the MTA waits for next (DATA or end of message under
   * Postfix); the connection closes once that message is over, or now if
   * none is under way. A peer that reaches no awaited reply within
   * frame_timeout_ms more is closed without one.
   */
  private sessionExpired(): void {
    this.sessionTimer = undefined
    if (this.finished) return
    if (this.awaitingHandler) {
      this.sessionTimer = setTimeout(
        () => runContained(this, () => this.sessionExpired()),
        this.rt.config.milter.frame_timeout_ms,
      )
      return
    }
    const ms = this.rt.config.milter.session_timeout_ms
    this.session.expire(ms)
    this.graceTimer = setTimeout(
      () =>
        runContained(this, () =>
          this.fail(
            new MilterProtocolError(
              'session_timeout',
              `no message reached its end within ${ms} ms, nor an answer ${this.rt.config.milter.frame_timeout_ms} ms after`,
            ),
          ),
        ),
      this.rt.config.milter.frame_timeout_ms,
    )
    this.drain()
  }

  private clearFrameTimer(): void {
    clearTimeout(this.frameTimer)
    this.frameTimer = undefined
  }

  private onData(chunk: Buffer): void {
    try {
      this.ownQueued()
      const commands = this.decoder.push(chunk)
      this.queue.push(...commands)
      this.watchFrame(commands.length)
    } catch (e) {
      return this.fail(e)
    }
    if (!this.pumping) void this.pump()
  }

  /**
   * A body chunk still queued may lie in the decoder's reused buffer, which
   * the next push overwrites: it gets bytes of its own first. (Reading is
   * paused while commands wait on a handler, so the queue is nearly always
   * empty here.)
   */
  private ownQueued(): void {
    for (const [i, cmd] of this.queue.entries())
      if ((cmd.type === 'body' || cmd.type === 'endOfMessage') && this.isTransient(cmd.chunk))
        this.queue[i] = { ...cmd, chunk: Buffer.from(cmd.chunk) }
  }

  /** Whether a chunk lies in a buffer the next read overwrites (the shared read buffer, the decoder's). */
  private isTransient(chunk: Buffer): boolean {
    return isSharedRead(chunk) || this.decoder.isTransient(chunk)
  }

  /** Never rejects: whatever goes wrong ends in a reply, or in closing this connection. */
  private async pump(): Promise<void> {
    this.pumping = true
    const out: MilterResponse[] = []
    try {
      while (this.queue.length && !this.session.closed && !this.finished) {
        const r = this.session.handle(this.queue.shift()!)
        if (Array.isArray(r)) out.push(...r)
        else out.push(...(await this.awaitHandler(r)))
      }
    } catch (e) {
      this.pumping = false
      this.send(out)
      return this.fail(e)
    }
    this.pumping = false
    try {
      this.send(out)
      if (this.session.closed) this.end()
      else this.endIfIdle()
    } catch (e) {
      this.fail(e)
    }
  }

  /** Pauses reading while a policy runs, so a pipelining peer cannot queue without bound. */
  private async awaitHandler(p: Promise<MilterResponse[]>): Promise<MilterResponse[]> {
    this.awaitingHandler = true
    this.socket.pause()
    try {
      return await p
    } finally {
      this.awaitingHandler = false
      if (!this.finished) this.socket.resume()
    }
  }

  private send(out: MilterResponse[]): void {
    if (out.length && !this.finished && this.socket.writable) this.socket.write(this.encode(out))
  }

  /**
   * One buffer for the batch. A response the codec refuses is never thrown
   * out of here: it and the rest of its message's modifications give way to
   * a 451 in place of that message's final reply (the MTA then discards the
   * edits already sent), logged and counted.
   */
  private encode(out: MilterResponse[]): Buffer {
    const frames: Buffer[] = []
    let refused = false
    for (const r of out) {
      const final = !MODIFICATION_TYPES.has(r.type)
      if (refused) {
        if (final) frames.push(UNWRITABLE)
        refused = !final
        continue
      }
      try {
        frames.push(encodeResponse(r))
      } catch (e) {
        this.unwritable(r, e)
        if (final) frames.push(UNWRITABLE)
        else refused = true
      }
    }
    if (refused) frames.push(UNWRITABLE)
    return frames.length === 1 ? frames[0]! : Buffer.concat(frames)
  }

  private unwritable(r: MilterResponse, e: unknown): void {
    this.rt.metrics.internalErrors.inc({ adapter: 'milter', stage: 'encode' })
    this.rt.log.error('milter response cannot be written; answering 451 for this message', {
      session: this.session.id,
      response: r.type,
      error: describeError(e),
    })
  }

  private endIfIdle(): void {
    if (this.draining && !this.pumping && !this.session.busy) this.end()
  }

  /** Closes both directions (Postfix may keep its end open); waits for unsent bytes first. */
  private end(): void {
    if (this.socket.writableLength === 0) this.socket.destroy()
    else this.socket.end(() => this.socket.destroy())
  }

  private onIdle(): void {
    // A policy still working is bounded by its own deadline; only a silent peer is stalled.
    if (this.awaitingHandler) return
    const what = this.decoder.pendingBytes ? 'in the middle of a frame' : 'between commands'
    this.fail(
      new MilterProtocolError(
        'idle_timeout',
        `peer sent nothing for ${this.rt.config.milter.idle_timeout_ms} ms ${what}`,
      ),
    )
  }

  private fail(e: unknown): void {
    if (this.finished) return
    if (isMilterProtocolError(e)) {
      this.rt.metrics.milterProtocolErrors.inc({ reason: e.reason })
      this.ctx.logLimit(e.reason, (extra) =>
        this.rt.log.warn('milter protocol error; closing the connection', {
          session: this.session.id,
          reason: e.reason,
          error: e.message,
          ...extra,
        }),
      )
    } else {
      this.rt.metrics.internalErrors.inc({ adapter: 'milter', stage: 'session' })
      this.rt.log.error('milter session failed; closing the connection', {
        session: this.session.id,
        error: describeError(e),
      })
    }
    // Postfix then applies milter_default_action (tempfail in our examples) to this SMTP session.
    this.socket.destroy()
    this.closed()
  }

  private closed(): void {
    if (this.finished) return
    this.finished = true
    clearTimeout(this.negotiationTimer)
    clearTimeout(this.sessionTimer)
    clearTimeout(this.graceTimer)
    this.clearFrameTimer()
    this.session.dispose()
    this.onClose(this)
  }
}
