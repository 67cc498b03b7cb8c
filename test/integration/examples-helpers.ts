import assert from 'node:assert/strict'
import { createMetrics } from '../../core/metrics'

/** Names a query may use: each exported metric, plus _bucket/_sum/_count of histograms. */
export async function exportedMetricNames(): Promise<Set<string>> {
  const names = new Set<string>()
  for (const m of await createMetrics().registry.getMetricsAsJSON()) {
    names.add(m.name)
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s)
  }
  return names
}

/** Every linksec_… identifier in a text (queries, rule files). */
export function metricNamesIn(text: string): Set<string> {
  return new Set([...text.matchAll(/\blinksec_[a-z0-9_]+/g)].map((m) => m[0]))
}

/** `KEY = VALUE` settings of a main.cf fragment (comments and blank lines dropped, continuations joined). */
export function mainCfSettings(text: string): [string, string][] {
  const joined = text.replace(/\n[ \t]+(?=\S)/g, ' ')
  return joined
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
    .map((l) => {
      const m = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(l)
      assert.ok(m, `main.cf line is KEY = VALUE: ${l}`)
      return [m[1]!, m[2]!.trim()]
    })
}
