/**
 * A signed result applied to the message bytes: header edits (deletes by
 * per-name index, then appends at the end of the header block, prepends at
 * the top) and the new body. For `linksec sign`, tests and any adapter that
 * holds the whole message rather than editing it in place.
 */
import type { HeaderEdit } from '../verdict'
import { rawFields, splitEntity, toCrlf } from '../mime'

export function applyEdits(raw: Buffer, edits: readonly HeaderEdit[], body?: Buffer): Buffer {
  const { head, body: oldBody } = splitEntity(toCrlf(raw))
  let fields = rawFields(head).map((f) => (f.raw.endsWith('\r\n') ? f.raw : `${f.raw}\r\n`))
  const keys = rawFields(head).map((f) => f.key)
  const gone = new Set<number>()
  for (const e of edits) {
    if (e.op !== 'delete') continue
    let n = 0
    const at = keys.findIndex((k, i) => k === e.name.toLowerCase() && !gone.has(i) && ++n === e.index)
    if (at !== -1) gone.add(at)
  }
  fields = fields.filter((_, i) => !gone.has(i))
  for (const e of edits) {
    if (e.op === 'append') fields.push(`${e.name}: ${e.value}\r\n`)
    else if (e.op === 'prepend') fields.unshift(`${e.name}: ${e.value}\r\n`)
  }
  return Buffer.concat([Buffer.from(`${fields.join('')}\r\n`, 'latin1'), body ?? oldBody])
}

/** The whole signed message from signMessage's result. */
export function applySigned(raw: Buffer, r: { headers: readonly HeaderEdit[]; body: Buffer }): Buffer {
  return applyEdits(raw, r.headers, r.body)
}
