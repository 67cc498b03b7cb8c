/**
 * Macros (SMFIC_MACRO) kept per stage, as libmilter does: each `D` packet
 * replaces the set for its command, lookups search from the latest stage back
 * to CONNECT, and a new transaction forgets the transaction's stages. Postfix
 * sends a `D` before every event, even an empty one, even for events
 * negotiated away, so every command code is accepted.
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

/** `{tls_version}` and `tls_version` name the same macro; one-letter macros have no braces. */
function canonical(name: string): string {
  return name.length > 1 && !name.startsWith('{') ? `{${name}}` : name
}

export class MacroStore {
  private readonly stages = new Map<number, Map<string, string>>()

  set(command: number, pairs: MacroPairs): void {
    this.stages.set(command, new Map(pairs.map(([k, v]) => [canonical(k), v])))
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

  clearTransaction(): void {
    for (const s of TRANSACTION_STAGES) this.stages.delete(s)
  }

  clearAll(): void {
    this.stages.clear()
  }
}
