/**
 * Macros (SMFIC_MACRO) kept per stage, as libmilter does: each `D` packet
 * replaces the set for its command, lookups search from the latest stage back
 * to CONNECT, and a new transaction forgets the transaction's stages. Postfix
 * sends a `D` before every event, even an empty one, even for events
 * negotiated away, so every command code is accepted; only the stages below
 * are kept (a `D` for any other code is dropped: nothing looks there, and a
 * peer could otherwise park 256 sets), and the store counts the bytes it
 * holds so the session can bound them (milter/limits.ts).
 */
import { Cmd } from './wire/codes'
import type { MacroPairs } from './wire/types'

/** Lookup order: latest stage first (libmilter getsymval). */
const SEARCH_ORDER = [
  Cmd.endOfMessage,
  Cmd.body,
  Cmd.eoh,
  Cmd.header,
  Cmd.data,
  Cmd.rcpt,
  Cmd.mail,
  Cmd.unknown,
  Cmd.helo,
  Cmd.connect,
]
const TRANSACTION_STAGES = [Cmd.mail, Cmd.rcpt, Cmd.data, Cmd.header, Cmd.eoh, Cmd.body, Cmd.endOfMessage]
const KNOWN_STAGES: ReadonlySet<number> = new Set(SEARCH_ORDER)

/** What one stage's macros cost, roughly in bytes (names and values). */
export function macroBytes(pairs: MacroPairs): number {
  let n = 0
  for (const [k, v] of pairs) n += k.length + v.length + 2
  return n
}

/** `{tls_version}` and `tls_version` name the same macro; one-letter macros have no braces. */
function canonical(name: string): string {
  return name.length > 1 && !name.startsWith('{') ? `{${name}}` : name
}

export class MacroStore {
  private readonly stages = new Map<number, Map<string, string>>()
  private readonly sizes = new Map<number, number>()
  private total = 0

  /** Whether macros sent for this command are kept at all. */
  static keeps(command: number): boolean {
    return KNOWN_STAGES.has(command)
  }

  /** Bytes held over all stages. */
  get bytes(): number {
    return this.total
  }

  /** Bytes held for one stage (what a new set for it replaces). */
  stageBytes(command: number): number {
    return this.sizes.get(command) ?? 0
  }

  /** Replaces one stage's macros; a command that is no macro stage is ignored. */
  set(command: number, pairs: MacroPairs): void {
    if (!MacroStore.keeps(command)) return
    this.drop(command)
    const size = macroBytes(pairs)
    this.stages.set(command, new Map(pairs.map(([k, v]) => [canonical(k), v])))
    this.sizes.set(command, size)
    this.total += size
  }

  /** Forgets one stage; returns the bytes freed. */
  private drop(command: number): number {
    const size = this.sizes.get(command) ?? 0
    this.stages.delete(command)
    this.sizes.delete(command)
    this.total -= size
    return size
  }

  get(name: string): string | undefined {
    const key = canonical(name)
    for (const stage of SEARCH_ORDER) {
      const v = this.stages.get(stage)?.get(key)
      if (v !== undefined) return v
    }
    return undefined
  }

  /** The macros sent for one command only. */
  stage(command: number): ReadonlyMap<string, string> {
    return this.stages.get(command) ?? new Map()
  }

  /** Every macro currently visible, latest stage winning (logs, test cases). */
  all(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const stage of [...SEARCH_ORDER].reverse()) {
      for (const [k, v] of this.stages.get(stage) ?? []) out[k] = v
    }
    return out
  }

  /** Forgets the transaction's stages; returns the bytes freed. */
  clearTransaction(): number {
    return TRANSACTION_STAGES.reduce((n, s) => n + this.drop(s), 0)
  }

  /** Forgets everything; returns the bytes freed. */
  clearAll(): number {
    const freed = this.total
    this.stages.clear()
    this.sizes.clear()
    this.total = 0
    return freed
  }
}
