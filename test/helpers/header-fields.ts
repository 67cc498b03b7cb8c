/**
 * Header fields of a message as the next hop reads them, and the difference
 * between two header blocks: which fields were removed (with their 1-based
 * index among fields of the same name, as milter CHGHEADER and the cases count
 * them) and which were added. Used to compare what an adapter queued with what
 * the MTA alone would have queued.
 */

export interface HeaderField {
  name: string
  value: string
}

/** Header fields of a message (unfolded per RFC 5322 §2.2.3) and its body. */
export function splitFields(raw: string): { header: HeaderField[]; body: string } {
  const text = raw.replace(/\r\n/g, '\n')
  const end = text.indexOf('\n\n')
  const head = end < 0 ? text : text.slice(0, end)
  const body = end < 0 ? '' : text.slice(end + 2)
  const header: HeaderField[] = []
  for (const line of head.split('\n')) {
    const last = header[header.length - 1]
    if (/^[ \t]/.test(line) && last) last.value += line
    else if (line.includes(':')) {
      const at = line.indexOf(':')
      header.push({ name: line.slice(0, at), value: line.slice(at + 1) })
    }
  }
  for (const f of header) f.value = f.value.trim()
  return { header, body }
}

const key = (f: HeaderField) => `${f.name.toLowerCase()}\0${f.value}`

/** The fields of `before` kept in `after` (longest common subsequence); the rest were removed or added. */
export function diffFields(before: HeaderField[], after: HeaderField[]) {
  const n = before.length
  const m = after.length
  const lcs = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0))
  // Every index below stays within 0..n and 0..m, so the lookups are defined.
  const at = (i: number, j: number) => lcs[i]![j]!
  const same = (i: number, j: number) => key(before[i]!) === key(after[j]!)
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = same(i, j) ? at(i + 1, j + 1) + 1 : Math.max(at(i + 1, j), at(i, j + 1))
  const removedAt: number[] = []
  const added: HeaderField[] = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && same(i, j)) {
      i++
      j++
    } else if (j >= m || (i < n && at(i + 1, j) >= at(i, j + 1))) removedAt.push(i++)
    else added.push(after[j++]!)
  }
  return { added, removed: removedAt.map((k) => ({ ...before[k]!, index: occurrence(before, k) })) }
}

/** 1-based index of before[at] among the fields of its name. */
function occurrence(fields: HeaderField[], at: number): number {
  const name = fields[at]!.name.toLowerCase()
  return fields.slice(0, at + 1).filter((f) => f.name.toLowerCase() === name).length
}
