/**
 * Applies the core's HeaderEdits to a Haraka transaction.
 *
 * Deletions happen at once (end of data). Additions are staged and written in
 * the first `queue`/`queue_outbound` hook (priority -100), because Haraka's
 * data_post_respond() removes EVERY Authentication-Results field and writes
 * its own combined one whenever any plugin used connection.auth_results()
 * (spf, dkim, …): an A-R field we added at data_post would vanish.
 *
 * Haraka only removes all fields of a name; deleting the n-th occurrence
 * (a forged A-R among real ones) edits haraka-email-message's Header in place:
 * `header_list` (the raw lines the message stream writes), `headers` and
 * `headers_decoded` (the per-name value lists, in the same order).
 */
import { safeHeaderValue, type HeaderEdit } from '../core/verdict'
import type { HarakaHeader, HarakaTransaction } from './haraka'

type Addition = Exclude<HeaderEdit, { op: 'delete' }>
type Deletion = Extract<HeaderEdit, { op: 'delete' }>

const staged = new WeakMap<HarakaTransaction, Addition[]>()

function isHeaderLine(line: string, lowerName: string): boolean {
  return line.slice(0, lowerName.length + 1).toLowerCase() === `${lowerName}:`
}

/** Removes the index-th (1-based) occurrence of a header; false if there is none. */
export function removeHeaderOccurrence(header: HarakaHeader, name: string, index: number): boolean {
  const key = name.toLowerCase()
  let seen = 0
  const at = header.header_list.findIndex((line) => isHeaderLine(line, key) && ++seen === index)
  if (at < 0) return false
  header.header_list.splice(at, 1)
  header.headers[key]?.splice(index - 1, 1)
  header.headers_decoded[key]?.splice(index - 1, 1)
  if (header.headers[key]?.length === 0) delete header.headers[key]
  if (header.headers_decoded[key]?.length === 0) delete header.headers_decoded[key]
  return true
}

/** Deletes now (highest index first, so earlier indexes stay valid); stages additions. */
export function applyHeaderEdits(txn: HarakaTransaction, edits: readonly HeaderEdit[]): void {
  const adds: Addition[] = []
  const deletes: Deletion[] = []
  for (const e of edits) {
    if (e.op === 'delete') deletes.push(e)
    else adds.push(e)
  }
  // Almost every message: nothing forged to delete, one or two fields to add.
  if (deletes.length) deleteOccurrences(txn, deletes)
  if (adds.length) staged.set(txn, [...(staged.get(txn) ?? []), ...adds])
}

function deleteOccurrences(txn: HarakaTransaction, deletes: Deletion[]): void {
  deletes.sort((a, b) => b.index - a.index)
  const done = new Set<string>()
  for (const d of deletes) {
    const id = `${d.name.toLowerCase()}#${d.index}`
    if (done.has(id)) continue // two duties may both ask to drop the same forged field
    done.add(id)
    removeHeaderOccurrence(txn.header, d.name, d.index)
  }
  txn.reset_headers?.()
}

/** Writes staged additions; called once the message is accepted, just before queueing. */
export function flushStagedHeaders(txn: HarakaTransaction): number {
  const adds = staged.get(txn) ?? []
  staged.delete(txn)
  // Each leading header lands above the previous one: prepend in reverse so
  // the fields keep the pipeline's order, as the milter writes them.
  for (let i = adds.length - 1; i >= 0; i--) {
    const a = adds[i]!
    if (a.op === 'prepend') txn.add_leading_header(a.name, safeHeaderValue(a.value, a.name.length))
  }
  for (const a of adds)
    if (a.op !== 'prepend') txn.add_header(a.name, safeHeaderValue(a.value, a.name.length))
  return adds.length
}

/** Additions waiting for the queue hook (tests, diagnostics). */
export function stagedHeaders(txn: HarakaTransaction): readonly Addition[] {
  return staged.get(txn) ?? []
}
