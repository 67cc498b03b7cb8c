/**
 * One milter connection's state: negotiation, macros attached to their
 * stage, the transaction being built (envelope, headers, body) and the stage
 * order. It owns the MTA's quirks: Postfix sends a `D` before every event,
 * aborts and repeats HELO after STARTTLS, and may reuse the connection for
 * several messages. Edits are held until end of message, where the handler's
 * modifications and final reply are returned together (one write).
 */
import { describeError } from '../core/errors'
import type { Logger } from '../core/log'
import { BodyBlocks, SMALL_BODY_BYTES } from './body-blocks'
import { limitReply, unlimited, type LimitName, type SessionLimits } from './limits'
import { macroBytes, MacroStore } from './macros'
import {
  expectsReply,
  isSent,
  negotiate,
  type EventName,
  type HandlerNeeds,
  type Negotiated,
} from './negotiate'
import { INTERNAL_ERROR_REPLY, safeModification } from './reply'
import { Action } from './wire/codes'
import { MilterProtocolError } from './wire/errors'
import {
  MODIFICATION_TYPES,
  type ConnectCommand,
  type MacroPairs,
  type MilterCommand,
  type MilterResponse,
} from './wire/types'

export interface Header {
  name: string
  value: string
}

export interface Recipient {
  address: string
  args: string[]
}

export interface Transaction {
  sender: string
  senderArgs: string[]
  recipients: Recipient[]
  headers: Header[]
  /** The kept body: its chunks, or views into `blocks` past SMALL_BODY_BYTES (milter/body-blocks.ts). */
  body: Buffer[]
  /** The blocks a large body was copied into; handed back when the transaction ends. */
  blocks?: BodyBlocks
  bodyBytes: number
  /** More body arrived than the handler keeps. */
  bodyTruncated: boolean
}

export interface SessionFacts {
  readonly id: number
  readonly negotiated?: Negotiated
  readonly connection?: ConnectCommand
  readonly helo?: string
  readonly macros: MacroStore
  readonly transaction?: Transaction
}

export interface EndOfMessageReply {
  /** Header/recipient/body edits and quarantine, sent before the final reply. */
  modifications: MilterResponse[]
  /** continue, accept, discard, reject, tempfail or replyCode. */
  final: MilterResponse
}

export interface MilterHandler {
  readonly needs: HandlerNeeds
  /** Largest body kept in memory when the body is needed; the rest is counted, not kept. */
  readonly maxBodyBytes?: number
  /** Answers an event the handler declared as 'decide'. */
  decide?(event: EventName, facts: SessionFacts): MilterResponse | Promise<MilterResponse>
  endOfMessage(facts: SessionFacts): Promise<EndOfMessageReply>
}

export interface SessionOptions {
  id: number
  log: Logger
  /** Counts a handler failure (the session has already answered 4xx or will). */
  onInternalError?: (stage: string, e: unknown) => void
  /** Memory bounds (milter/limits.ts); default none. */
  limits?: SessionLimits
  /** A message reached its end (answered or refused): the connection's deadline restarts. */
  onMessageEnd?: () => void
  /**
   * Whether a body chunk lies in a buffer the decoder reuses (valid only
   * until its next read, milter/wire/decode.ts): such a chunk is copied
   * before it is kept.
   */
  isTransient?: (chunk: Buffer) => boolean
}

/** A bound passed: the reply its message (or connection) gets. */
interface Refusal {
  limit: LimitName
  bound: number
  /** Counted once, when first answered. */
  counted?: boolean
}

type Phase = 'new' | 'negotiated' | 'connected' | 'closed'
type Out = MilterResponse[] | Promise<MilterResponse[]>

/** Order of the transaction's stages; a command may not go back to an earlier one. */
const RANK = { mail: 1, rcpt: 2, data: 3, header: 4, eoh: 5, body: 6 } as const
const NONE: MilterResponse[] = []
/** Extra copies of a kept message that checking it makes (see reserveProcessing). */
const PROCESSING_COPIES = 2
const CONTINUE: MilterResponse[] = [{ type: 'continue' }]

export class MilterSession implements SessionFacts {
  readonly id: number
  readonly macros = new MacroStore()
  negotiated?: Negotiated
  connection?: ConnectCommand
  helo?: string
  transaction?: Transaction
  private phase: Phase = 'new'
  private rank = 0
  private inFlight = 0
  /** Ends each handler call in flight with an error (see abortInFlight). */
  private readonly aborts = new Set<(e: unknown) => void>()
  private readonly limits: SessionLimits
  /** Bytes of the transaction's headers and body reserved in limits.held. */
  private heldTx = 0
  private headerBytes = 0
  /** The current message's refusal (cleared with the transaction). */
  private refusal?: Refusal
  /** The connection's refusal (macros; cleared when the connection is reset). */
  private connectionRefusal?: Refusal

  constructor(
    private readonly handler: MilterHandler,
    private readonly opts: SessionOptions,
  ) {
    this.id = opts.id
    this.limits = opts.limits ?? unlimited()
  }

  /** Releases every byte this session holds (its connection closed). */
  dispose(): void {
    this.releaseTransactionBytes()
    this.limits.held.release(this.macros.clearAll())
  }

  get closed(): boolean {
    return this.phase === 'closed'
  }

  /** A message is under way or a handler is running: shutdown waits for it. */
  get busy(): boolean {
    return this.transaction !== undefined || this.inFlight > 0
  }

  /** Handles one command; returns what to send back (often nothing). */
  handle(cmd: MilterCommand): Out {
    if (this.phase === 'closed') throw this.orderError(cmd, 'after QUIT')
    if (cmd.type === 'optneg') return this.onOptneg(cmd)
    if (this.phase === 'new') throw this.orderError(cmd, 'before option negotiation')
    switch (cmd.type) {
      case 'macro':
        return this.onMacro(cmd.command, cmd.macros)
      case 'connect':
        return this.onConnect(cmd)
      case 'helo':
        return this.onHelo(cmd.name, cmd)
      case 'mail':
        return this.onMail(cmd)
      case 'rcpt':
        return this.onRcpt(cmd)
      case 'data':
        this.advance(cmd, RANK.data, RANK.rcpt)
        return this.event('data')
      case 'header':
        this.advance(cmd, RANK.header, RANK.header)
        this.keepHeader(cmd.name, cmd.value)
        return this.event('header')
      case 'eoh':
        this.advance(cmd, RANK.eoh, RANK.header)
        return this.event('eoh')
      case 'body':
        this.advance(cmd, RANK.body, RANK.body)
        return this.onBody(cmd.chunk)
      case 'endOfMessage':
        return this.onEndOfMessage(cmd)
      case 'unknown':
        if (this.transaction && this.rank > RANK.rcpt)
          throw this.orderError(cmd, 'inside the message content')
        return this.event('unknown')
      case 'abort':
        this.resetTransaction()
        return NONE
      case 'quit':
        this.phase = 'closed'
        return NONE
      case 'quitNewConnection':
        this.resetConnection()
        return NONE
    }
  }

  private onOptneg(cmd: Extract<MilterCommand, { type: 'optneg' }>): Out {
    if (this.phase !== 'new') throw this.orderError(cmd, 'twice')
    const { negotiated, reply } = negotiate(cmd, this.handler.needs)
    this.negotiated = negotiated
    this.phase = isSent(negotiated, 'connect') ? 'negotiated' : 'connected'
    return [reply]
  }

  private onConnect(cmd: ConnectCommand): Out {
    if (this.phase !== 'negotiated') throw this.orderError(cmd, 'twice in one connection')
    this.phase = 'connected'
    this.connection = cmd
    return this.event('connect')
  }

  private onHelo(name: string, cmd: MilterCommand): Out {
    this.requireConnected(cmd)
    if (this.transaction) throw this.orderError(cmd, 'inside a transaction (no ABORT first)')
    // Repeated after STARTTLS (with the TLS macros) and on a second EHLO: the latest wins.
    this.helo = name
    return this.event('helo')
  }

  private onMail(cmd: Extract<MilterCommand, { type: 'mail' }>): Out {
    this.requireConnected(cmd)
    if (this.transaction)
      throw this.orderError(cmd, 'inside a transaction (no ABORT or end of message first)')
    const [sender, ...senderArgs] = cmd.args
    this.transaction = newTransaction(sender!, senderArgs)
    this.rank = RANK.mail
    return this.event('mail')
  }

  private onRcpt(cmd: Extract<MilterCommand, { type: 'rcpt' }>): Out {
    this.advance(cmd, RANK.rcpt, RANK.rcpt)
    const [address, ...args] = cmd.args
    this.transaction!.recipients.push({ address: address!, args })
    return this.event('rcpt')
  }

  /** Synchronous: the end-of-message chunk goes through here too, and its reply is not sent. */
  private onBody(chunk: Buffer): MilterResponse[] {
    const tx = this.transaction!
    tx.bodyBytes += chunk.length
    if (this.refused()) tx.bodyTruncated = true
    else if (tx.bodyBytes <= (this.handler.maxBodyBytes ?? 0)) this.keepBody(tx, chunk)
    else tx.bodyTruncated = true
    if (!expectsReply(this.negotiated!, 'body')) return NONE
    if (this.refused()) return this.answerRefusal()
    // Over the cap, ask the MTA to stop sending body chunks (SMFIR_SKIP) if it understands that.
    if (tx.bodyTruncated && this.negotiated!.canSkip) return [{ type: 'skip' }]
    return CONTINUE
  }

  /**
   * A chunk kept is one the pool accounts for truly: a small view of a
   * larger read (a short frame that arrived with others) is copied, so
   * what is held is its own bytes, not the whole read behind it; so is a
   * chunk in the decoder's reused buffer, which the next read overwrites.
   * A chunk not kept (refused, or past the body cap) is never copied.
   */
  private keepBody(tx: Transaction, chunk: Buffer): void {
    if (tx.bodyBytes > SMALL_BODY_BYTES) {
      tx.blocks ??= new BodyBlocks(this.limits.blocks)
      const views = tx.blocks.append(chunk, (n) => this.hold(n))
      if (views) for (const v of views) tx.body.push(v)
      return
    }
    if (!this.hold(chunk.length)) return
    const copy = chunk.buffer.byteLength > 2 * chunk.length || this.opts.isTransient?.(chunk) === true
    tx.body.push(copy ? Buffer.from(chunk) : chunk)
  }

  private keepHeader(name: string, value: string): void {
    const tx = this.transaction!
    if (this.refused()) return
    const size = name.length + value.length + 2
    this.headerBytes += size
    if (tx.headers.length >= this.limits.maxHeaders) return this.refuse('headers', this.limits.maxHeaders)
    if (this.headerBytes > this.limits.maxHeaderBytes)
      return this.refuse('header_bytes', this.limits.maxHeaderBytes)
    if (this.hold(size)) tx.headers.push({ name, value })
  }

  /** Reserves bytes for the transaction in the shared pool; false (and a refusal) if it is full. */
  private hold(n: number): boolean {
    if (this.limits.held.take(n)) {
      this.heldTx += n
      return true
    }
    this.refuse('held_bytes', this.limits.held.max)
    return false
  }

  /**
   * Passes a bound: the message's headers and body are dropped at once
   * (their memory is the point), and its next awaited reply is the refusal.
   */
  private refuse(limit: LimitName, bound: number): void {
    this.refusal = { limit, bound }
    this.dropHeld()
  }

  /**
   * The connection ran out of time ([milter] session_timeout_ms, watched by
   * milter/connection.ts): what its message holds is dropped, and every
   * reply the MTA waits for from now on is the refusal (451 4.4.2).
   * Counted here, once.
   */
  expire(bound: number): void {
    if (this.connectionRefusal?.limit === 'session_time') return
    this.limits.onLimit?.('session_time')
    this.connectionRefusal = { limit: 'session_time', bound, counted: true }
    this.dropHeld()
  }

  private dropHeld(): void {
    const tx = this.transaction
    if (tx) {
      tx.headers = []
      tx.bodyTruncated = true
    }
    this.releaseTransactionBytes()
  }

  private refused(): Refusal | undefined {
    return this.connectionRefusal ?? this.refusal
  }

  /**
   * The refusal's reply, counted the first time. A message refused because
   * the shared pool was full is told 552 instead of 451 if it is larger
   * than the whole pool on its own (a retry could never fit).
   */
  private answerRefusal(): MilterResponse[] {
    const r = this.refused()!
    if (r.limit === 'held_bytes' && this.messageBytes() > this.limits.held.max) r.limit = 'message_bytes'
    if (!r.counted) this.limits.onLimit?.(r.limit)
    r.counted = true
    return [limitReply(r.limit, r.bound)]
  }

  /** What the current message would hold if it were kept whole. */
  private messageBytes(): number {
    const body = Math.min(this.transaction?.bodyBytes ?? 0, this.handler.maxBodyBytes ?? 0)
    return this.headerBytes + body
  }

  /** Macros for one stage, within the connection's macro bound and the shared pool. */
  private onMacro(command: number, pairs: MacroPairs): Out {
    if (!MacroStore.keeps(command)) return NONE
    const grow = macroBytes(pairs) - this.macros.stageBytes(command)
    if (this.macros.bytes + grow > this.limits.maxMacroBytes) {
      this.connectionRefusal ??= { limit: 'macro_bytes', bound: this.limits.maxMacroBytes }
      return NONE
    }
    if (grow > 0 && !this.limits.held.take(grow)) {
      this.refuse('held_bytes', this.limits.held.max)
      return NONE
    }
    if (grow < 0) this.limits.held.release(-grow)
    this.macros.set(command, pairs)
    return NONE
  }

  private onEndOfMessage(cmd: Extract<MilterCommand, { type: 'endOfMessage' }>): Out {
    this.advance(cmd, RANK.body, RANK.body)
    // The chunk that comes with end-of-message is body like any other; only the final reply is sent.
    if (cmd.chunk.length) this.onBody(cmd.chunk)
    if (this.refused()) return this.finishMessage(this.answerRefusal())
    const reserved = this.reserveProcessing()
    if (reserved === undefined) return this.finishMessage(this.answerRefusal())
    const held = this.limits.held
    // track() never rejects: whatever happens, the reservation is given back here.
    return this.track('endOfMessage', async () => {
      const r = await this.handler.endOfMessage(this)
      return [...this.allowedModifications(r.modifications), r.final]
    }).then((out) => {
      held.endProcessing(reserved)
      // The connection ran out of time while the message was checked: what it
      // held was dropped under the check, so its answer cannot stand.
      if (this.connectionRefusal) return this.finishMessage(this.answerRefusal())
      return this.finishMessage(out)
    })
  }

  /**
   * Checking a message copies it (the body joined, line ends normalised,
   * the MIME parse): measured, a kept body costs about three times its size
   * while its end of message runs. That is reserved in the shared pool
   * too. A message that cannot get it waits for a retry (451), unless no
   * other is being checked: one message larger than the reserve alone still
   * goes through, one at a time. Undefined: refused.
   */
  private reserveProcessing(): number | undefined {
    const held = this.limits.held
    const taken = held.beginProcessing(PROCESSING_COPIES * this.heldTx)
    if (taken === undefined) this.refuse('held_bytes', held.max)
    return taken
  }

  private finishMessage(out: MilterResponse[]): MilterResponse[] {
    this.resetTransaction()
    this.opts.onMessageEnd?.()
    return out
  }

  /**
   * An error escaped a handler's own promise (a throw in a timer, a promise
   * nobody awaited; see core/guard.ts): the calls in flight answer 4xx now
   * instead of waiting for a reply that may never come. False if none was.
   */
  abortInFlight(e: unknown): boolean {
    if (this.aborts.size === 0) return false
    for (const abort of [...this.aborts]) abort(e)
    return true
  }

  /** Drops edits the MTA did not allow in negotiation (it would drop the connection); cleans texts. */
  private allowedModifications(mods: MilterResponse[]): MilterResponse[] {
    const allowed = this.negotiated!.actions
    return mods.map(safeModification).filter((m) => {
      const need = ACTION_FOR[m.type]
      if (!MODIFICATION_TYPES.has(m.type) || need === undefined || (allowed & need) === 0) {
        this.opts.log.warn('milter modification not negotiated; dropped', {
          session: this.id,
          action: m.type,
        })
        return false
      }
      return true
    })
  }

  /** An event: the handler's answer if it decides here, else continue, or nothing under NR_x. */
  private event(event: EventName): Out {
    if (!expectsReply(this.negotiated!, event)) return NONE
    if (this.refused() && event !== 'connect' && event !== 'helo') return this.answerRefusal()
    if (this.handler.needs.events[event] !== 'decide' || !this.handler.decide) return CONTINUE
    return this.track(event, async () => [await this.handler.decide!(event, this)])
  }

  /** Runs a handler call; any error becomes a 4xx answer, never an accept. */
  private track(stage: string, call: () => Promise<MilterResponse[]>): Promise<MilterResponse[]> {
    // One promise and one pair of handlers per call, not a race, a catch and a finally: this runs
    // per message, and under AsyncLocalStorage (core/guard.ts) every promise costs a hook call.
    this.inFlight++
    return new Promise<MilterResponse[]>((resolve) => {
      let settled = false
      const settle = (out: MilterResponse[]) => {
        if (settled) return
        settled = true
        this.aborts.delete(fail)
        this.inFlight--
        resolve(out)
      }
      const fail = (e: unknown) => {
        if (settled) return
        this.opts.log.error('milter handler failed; answering 451', {
          session: this.id,
          stage,
          error: describeError(e),
        })
        this.opts.onInternalError?.(stage, e)
        settle([INTERNAL_ERROR_REPLY])
      }
      this.aborts.add(fail)
      call().then(settle, fail)
    })
  }

  private requireConnected(cmd: MilterCommand): void {
    if (this.phase !== 'connected') throw this.orderError(cmd, 'before CONNECT')
  }

  /** Moves the transaction to a later stage; `maxFrom` is the latest stage it may come after. */
  private advance(cmd: MilterCommand, to: number, maxFrom: number): void {
    this.requireConnected(cmd)
    if (!this.transaction && !this.opensTransactionImplicitly()) throw this.orderError(cmd, 'before MAIL')
    this.transaction ??= newTransaction('', [])
    if (this.rank > maxFrom) throw this.orderError(cmd, `after ${stageName(this.rank)}`)
    this.rank = Math.max(this.rank, to)
  }

  /** With SMFIP_NOMAIL there is no MAIL event: the first later event opens the transaction. */
  private opensTransactionImplicitly(): boolean {
    return !isSent(this.negotiated!, 'mail')
  }

  private resetTransaction(): void {
    this.releaseTransactionBytes()
    this.transaction = undefined
    this.rank = 0
    this.refusal = undefined
    this.headerBytes = 0
    this.limits.held.release(this.macros.clearTransaction())
  }

  /**
   * Gives back what the transaction holds: its bytes in the shared pool and
   * its body blocks. The body list is emptied too, so nothing can read a
   * view into a block another session now fills.
   */
  private releaseTransactionBytes(): void {
    const tx = this.transaction
    if (tx) {
      tx.blocks?.release()
      tx.blocks = undefined
      tx.body = []
    }
    this.limits.held.release(this.heldTx)
    this.heldTx = 0
  }

  private resetConnection(): void {
    this.resetTransaction()
    this.limits.held.release(this.macros.clearAll())
    this.connectionRefusal = undefined
    this.connection = undefined
    this.helo = undefined
    this.phase = isSent(this.negotiated!, 'connect') ? 'negotiated' : 'connected'
  }

  private orderError(cmd: MilterCommand, what: string): MilterProtocolError {
    return new MilterProtocolError('stage_order', `${cmd.type.toUpperCase()} ${what}`)
  }
}

function newTransaction(sender: string, senderArgs: string[]): Transaction {
  return { sender, senderArgs, recipients: [], headers: [], body: [], bodyBytes: 0, bodyTruncated: false }
}

function stageName(rank: number): string {
  return (
    Object.entries(RANK)
      .find(([, r]) => r === rank)?.[0]
      ?.toUpperCase() ?? 'start'
  )
}

/** Which negotiated action (SMFIF_*) each modification needs. */
const ACTION_FOR: Partial<Record<MilterResponse['type'], number>> = {
  quarantine: Action.quarantine,
  addHeader: Action.addHeaders,
  insertHeader: Action.addHeaders,
  changeHeader: Action.changeHeaders,
  changeSender: Action.changeSender,
  addRecipient: Action.addRecipients,
  addRecipientWithArgs: Action.addRecipientsWithArgs,
  deleteRecipient: Action.deleteRecipients,
  replaceBody: Action.changeBody,
}
