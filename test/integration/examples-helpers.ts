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
