/**
 * Milter frames as typed values: commands (MTA -> milter) and responses
 * (milter -> MTA), each a discriminated union on `type`. Strings are UTF-8
 * on the wire and never contain NUL; bodies stay bytes.
 */
import type { FamilyName } from './codes'

/** One length-prefixed frame before its payload is interpreted. */
export interface Frame {
  code: number
  payload: Buffer
}

export type MacroPairs = Array<[name: string, value: string]>

export type MilterCommand =
  | { type: 'optneg'; version: number; actions: number; protocol: number }
  /** `command` is the code of the command these macros belong to (e.g. 0x43 'C'). */
  | { type: 'macro'; command: number; macros: MacroPairs }
  | ConnectCommand
  | { type: 'helo'; name: string }
  /** args[0] is the sender as the client sent it (`<a@b>`), then ESMTP parameters. */
  | { type: 'mail'; args: string[] }
  | { type: 'rcpt'; args: string[] }
  | { type: 'data' }
  | { type: 'header'; name: string; value: string }
  | { type: 'eoh' }
  | { type: 'body'; chunk: Buffer }
  /** Postfix sends the last chunk as a separate BODY; Sendmail may put one here. */
  | { type: 'endOfMessage'; chunk: Buffer }
  | { type: 'unknown'; command: string }
  | { type: 'abort' }
  | { type: 'quit' }
  | { type: 'quitNewConnection' }

export type ConnectCommand =
  | { type: 'connect'; host: string; family: 'unknown' }
  | { type: 'connect'; host: string; family: Exclude<FamilyName, 'unknown'>; port: number; address: string }

/** Symbol list in an OPTNEG reply: which macros the MTA should send at a stage (SMFIF_SETSYMLIST). */
export interface SymbolList {
  stage: number
  /** Space-separated macro names, e.g. "{tls_version} {cipher}". */
  macros: string
}

export type SimpleResponseType =
  | 'continue'
  | 'accept'
  | 'reject'
  | 'tempfail'
  | 'discard'
  | 'shutdown'
  | 'connectionFailure'
  | 'progress'
  | 'skip'

export type MilterResponse =
  | { type: 'optneg'; version: number; actions: number; protocol: number; symbolLists: SymbolList[] }
  | { type: SimpleResponseType }
  /** "550 5.7.10 text", possibly multi-line ("550-5.7.10 a\r\n550 5.7.10 b"). */
  | { type: 'replyCode'; text: string }
  | { type: 'quarantine'; reason: string }
  | { type: 'addHeader'; name: string; value: string }
  /** index 0 = at the very top (above Postfix's own Received:). */
  | { type: 'insertHeader'; index: number; name: string; value: string }
  /** index is 1-based per header name; an empty value deletes the header. */
  | { type: 'changeHeader'; index: number; name: string; value: string }
  | { type: 'changeSender'; sender: string; args?: string }
  | { type: 'addRecipient'; recipient: string }
  | { type: 'addRecipientWithArgs'; recipient: string; args?: string }
  | { type: 'deleteRecipient'; recipient: string }
  | { type: 'replaceBody'; chunk: Buffer }

export type MilterResponseType = MilterResponse['type']

/** The responses that may only be sent at end of message, before the final reply. */
export const MODIFICATION_TYPES: ReadonlySet<MilterResponseType> = new Set([
  'quarantine',
  'addHeader',
  'insertHeader',
  'changeHeader',
  'changeSender',
  'addRecipient',
  'addRecipientWithArgs',
  'deleteRecipient',
  'replaceBody',
])
