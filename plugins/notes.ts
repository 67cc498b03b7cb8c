/**
 * What linksec remembers about a message in Haraka's `transaction.notes.linksec`.
 * Haraka writes transaction.notes into the queue file as JSON, so outbound
 * duties find the same object as `hmail.todo.notes.linksec` when they decide
 * how (and whether) to relay the message. Keep it plain JSON.
 */
import type { Requirement } from '../core/levels'
import type { TlsFacts } from '../core/inbound'
import type { VerdictAction } from '../core/verdict'
import type { HarakaTransaction } from './haraka'

export const NOTES_KEY = 'linksec'

export interface LinksecNotes {
  /** MAIL FROM:<…> REQUIRETLS was accepted on this (TLS) session (RFC 8689). */
  requiretls?: boolean
  /** What the message requires of every hop, computed at end of data. */
  requirement?: Requirement
  /** The link the message came in on. */
  inbound?: { tls: boolean } & TlsFacts
  /** A verdict the Haraka adapter does not act on itself (quarantine, discard). */
  action?: VerdictAction
}

/** The notes object of a transaction, created on first use. */
export function linksecNotes(txn: HarakaTransaction): LinksecNotes {
  const notes = txn.notes
  let ours = notes[NOTES_KEY] as LinksecNotes | undefined
  if (!ours || typeof ours !== 'object') {
    ours = {}
    notes[NOTES_KEY] = ours
  }
  return ours
}

/** Reads the notes from an outbound HMailItem's todo (queue file), if any. */
export function notesOfTodo(todo: { notes?: Record<string, unknown> } | undefined): LinksecNotes {
  const ours = todo?.notes?.[NOTES_KEY]
  return ours && typeof ours === 'object' ? ours : {}
}
