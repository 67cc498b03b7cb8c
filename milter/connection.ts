/**
 * One accepted milter socket: bytes -> decoder -> session -> one write per
 * batch. Commands that arrive together (Postfix batches events it expects no
 * reply to) are answered together, and the end-of-message actions plus the
 * final reply always leave in a single write, so neither Nagle nor delayed
 * ACKs can split them. A protocol fault or a stalled peer closes this
 * connection only, with a log line and a counter.
 */
import type * as net from 'node:net'
import { describeError } from '../core/errors'
import type { Runtime } from '../core/runtime'
import { MilterSession, type MilterHandler } from './session'
import { CommandDecoder } from './wire/decode'
import { encodeAll, encodeResponse } from './wire/encode'
import { MilterProtocolError, isMilterProtocolError } from './wire/errors'
import type { MilterCommand, MilterResponse } from './wire/types'

export class MilterConnection {
  readonly session: MilterSession
  private readonly decoder: CommandDecoder
  private readonly queue: MilterCommand[] = []
  private pumping = false
  private awaitingHandler = false
  private draining = false
  private finished = false

  constructor(
    private readonly rt: Runtime,
    private readonly socket: net.Socket,
    handler: MilterHandler,
    id: number,
    private readonly onClose: (c: MilterConnection) => void,
  ) {
    this.decoder = new CommandDecoder(rt.config.milter.max_frame_bytes)
    this.session = new MilterSession(handler, {
      id,
      log: rt.log,
      onInternalError: (stage) => rt.metrics.internalErrors.inc({ adapter: 'milter', stage }),
    })
    socket.setNoDelay(true)
    socket.setTimeout(rt.config.milter.idle_timeout_ms)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('timeout', () => this.onIdle())
    socket.on('error', (e) => rt.log.debug('milter socket error', { session: id, error: describeError(e) }))
    socket.on('close', () => this.closed())
  }

  /** Finish the message in flight, then close; an idle connection closes now. */
  drain(): void {
    this.draining = true
    this.endIfIdle()
  }

  destroy(): void {
    this.socket.destroy()
  }

  private onData(chunk: Buffer): void {
    try {
      this.queue.push(...this.decoder.push(chunk))
    } catch (e) {
      return this.fail(e)
    }
    if (!this.pumping) void this.pump()
  }

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
      this.send(out)
      return this.fail(e)
    } finally {
      this.pumping = false
    }
    this.send(out)
    if (this.session.closed) this.end()
    else this.endIfIdle()
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
    if (out.length && !this.finished && this.socket.writable)
      this.socket.write(encodeAll(out, encodeResponse))
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
      this.rt.log.warn('milter protocol error; closing the connection', {
        session: this.session.id,
        reason: e.reason,
        error: e.message,
      })
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
    this.onClose(this)
  }
}
