/** Plain-text tables for stdout (and the README), one per benchmark. */
import type { BenchResult } from './types'

type Cell = string | number

function show(value: Cell | undefined): string {
  if (value === undefined) return ''
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'n/a'
  return value
}

/** Columns are the union of the rows' keys, in first-seen order. */
export function columnsOf(rows: ReadonlyArray<Record<string, Cell>>): string[] {
  const seen = new Set<string>()
  for (const row of rows) for (const key of Object.keys(row)) seen.add(key)
  return [...seen]
}

/** A GitHub-markdown table (readable as plain text too). */
export function formatTable(rows: ReadonlyArray<Record<string, Cell>>): string {
  if (rows.length === 0) return '(no rows)\n'
  const cols = columnsOf(rows)
  const cells = rows.map((row) => cols.map((c) => show(row[c])))
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]?.length ?? 0)))
  const line = (values: string[]) => `| ${values.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ')} |`
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`
  return [line(cols), rule, ...cells.map(line)].join('\n') + '\n'
}

function formatNumber(value: number): string {
  return Number.isFinite(value) ? value.toFixed(3) : 'n/a'
}

/** The table, then ratios, goals (with PASS/MISS) and notes of one result. */
export function formatResult(result: BenchResult & { error?: string; seconds?: number }): string {
  const parts = [`## ${result.name}\n`, formatTable(result.rows)]
  const ratios = Object.entries(result.ratios)
  if (ratios.length) parts.push(ratios.map(([k, v]) => `ratio ${k} = ${formatNumber(v)}`).join('\n') + '\n')
  for (const [k, g] of Object.entries(result.goals ?? {})) {
    parts.push(`goal  ${k}: ${formatNumber(g.value)} vs ${g.goal} -> ${g.met ? 'MET' : 'MISSED'}\n`)
  }
  for (const note of result.notes ?? []) parts.push(`note: ${note}\n`)
  if (result.error) parts.push(`ERROR: ${result.error}\n`)
  if (result.seconds !== undefined) parts.push(`(${result.seconds} s)\n`)
  return parts.join('')
}
