import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import { createMetrics } from '../../../core/metrics'

const ROOT = path.resolve(__dirname, '../../../..')
const ARCHITECTURE = path.resolve(ROOT, 'docs', 'architecture.md')

interface Named {
  name: string
  labels: string[]
  kind?: string
}

/** The metric names (with their labels) listed in docs/architecture.md §7. */
function designMetrics(): Named[] {
  const text = readFileSync(ARCHITECTURE, 'utf8')
  const section = /^## 7\. Metrics[\s\S]*$/m.exec(text)?.[0]
  assert.ok(section, 'docs/architecture.md has a §7 Metrics section')
  return [...section.matchAll(/`(linksec_[a-z_]+)(?:\{([a-z_,]+)\})?`(?: \((\w+)\))?/g)].map((m) => ({
    name: m[1]!,
    labels: m[2] ? m[2].split(',') : [],
    kind: m[3],
  }))
}

async function exported(): Promise<Map<string, { type: string; help: string; labels: Set<string> }>> {
  const m = createMetrics()
  // Touch every labelled metric once so its labels show in the JSON.
  const out = new Map<string, { type: string; help: string; labels: Set<string> }>()
  for (const metric of await m.registry.getMetricsAsJSON()) {
    const labels = new Set<string>()
    const entry = m.registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] }
    for (const l of entry.labelNames ?? []) labels.add(l)
    out.set(metric.name, { type: String(metric.type), help: metric.help, labels })
  }
  return out
}

test('every metric docs/architecture.md §7 names is exported with its labels and type', async () => {
  const wanted = designMetrics()
  assert.ok(wanted.length >= 8, `found ${wanted.length} metric names in docs/architecture.md §7`)
  const have = await exported()
  for (const w of wanted) {
    const got = have.get(w.name)
    assert.ok(got, `${w.name} is exported`)
    for (const l of w.labels) assert.ok(got.labels.has(l), `${w.name} has label ${l}`)
    if (w.kind) assert.equal(got.type, w.kind, `${w.name} is a ${w.kind}`)
  }
  assert.equal(have.get('linksec_milter_sessions')?.type, 'gauge')
})

test('Node process metrics are exported under the linksec_ prefix', async () => {
  const have = await exported()
  for (const name of [
    'linksec_process_cpu_seconds_total',
    'linksec_process_resident_memory_bytes',
    'linksec_nodejs_eventloop_lag_seconds',
  ])
    assert.ok(have.has(name), name)
  const bare = createMetrics({ processMetrics: false })
  assert.equal(bare.registry.getSingleMetric('linksec_process_cpu_seconds_total'), undefined)
})

test('every linksec metric has help text, the prefix, and follows the naming rules', async () => {
  for (const [name, m] of await exported()) {
    assert.match(name, /^linksec_[a-z0-9_]+$/, name)
    assert.ok(m.help.length >= 15, `${name} has help text`)
    if (m.type === 'counter') assert.match(name, /_total$/, `counter ${name} ends in _total`)
    else assert.doesNotMatch(name, /_total$/, `${m.type} ${name} does not end in _total`)
    if (m.type === 'histogram') assert.match(name, /_(seconds|bytes)$/, `histogram ${name} names its unit`)
  }
})

test('two registries never share counts', async () => {
  const a = createMetrics({ processMetrics: false })
  const b = createMetrics({ processMetrics: false })
  a.messages.inc({ adapter: 'milter', verdict: 'accept' })
  const bv = (await b.messages.get()).values
  assert.equal(bv.length, 0)
})
