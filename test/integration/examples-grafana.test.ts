/**
 * examples/grafana/linksec.json: it parses, every query names only metrics
 * linksec exports, every metric of docs/architecture.md §7 has a panel, and every query is
 * valid PromQL (checked by promtool, with Grafana's variables filled in).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { needTools } from '../helpers/tools'
import { exportedMetricNames, metricNamesIn } from './examples-helpers'

const FILE = path.resolve(__dirname, '../../../examples/grafana/linksec.json')
const ARCHITECTURE_METRICS = [
  'linksec_messages_total',
  'linksec_tagged_messages_total',
  'linksec_signature_results_total',
  'linksec_key_lookups_total',
  'linksec_key_lookup_duration_seconds_bucket',
  'linksec_peer_declarations_total',
  'linksec_milter_sessions',
  'linksec_milter_protocol_errors_total',
]

interface Panel {
  title?: string
  type?: string
  targets?: { expr?: string; refId?: string }[]
  panels?: Panel[]
  gridPos?: { h: number; w: number; x: number; y: number }
}

function panels(list: Panel[] = []): Panel[] {
  return list.flatMap((p) => [p, ...panels(p.panels)])
}

function dashboard(): {
  panels: Panel[]
  templating: { list: { query?: unknown }[] }
  uid: string
  title: string
} {
  return JSON.parse(readFileSync(FILE, 'utf8'))
}

function queries(): string[] {
  const d = dashboard()
  const exprs = panels(d.panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''))
  return exprs.filter((e) => e !== '')
}

test('the dashboard parses and every data panel has a titled query', () => {
  const d = dashboard()
  assert.equal(d.uid, 'linksec')
  const data = panels(d.panels).filter((p) => p.type !== 'row')
  assert.ok(data.length >= 10, `${data.length} panels`)
  for (const p of data) {
    assert.ok(p.title, 'panel has a title')
    assert.ok(
      (p.targets ?? []).length > 0 && p.targets!.every((t) => t.expr && t.refId),
      `${p.title} has queries`,
    )
    assert.ok(p.gridPos && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`)
  }
})

test('every query in the dashboard names a metric linksec exports, and only those', async () => {
  const exported = await exportedMetricNames()
  const all = queries()
  for (const q of all) {
    const names = metricNamesIn(q)
    assert.ok(names.size > 0, `query names a linksec metric: ${q}`)
    for (const n of names) assert.ok(exported.has(n), `${n} (in ${q}) is exported`)
  }
  const vars = JSON.stringify(dashboard().templating.list)
  for (const n of metricNamesIn(vars)) assert.ok(exported.has(n), `variable query metric ${n} is exported`)
})

test('every metric of docs/architecture.md §7 has a panel', () => {
  const used = metricNamesIn(queries().join('\n'))
  for (const n of ARCHITECTURE_METRICS) assert.ok(used.has(n), n)
})

test('every query is valid PromQL (promtool check rules)', (t) => {
  if (!needTools(t, { promtool: 'prometheus' })) return
  const filled = queries().map((q) =>
    q.replaceAll('$__rate_interval', '5m').replaceAll('$job', 'linksec').replaceAll('$instance', '.*'),
  )
  const rules = [
    'groups:',
    '  - name: grafana-queries',
    '    rules:',
    ...filled.flatMap((q, i) => [
      `      - record: linksec:grafana_query_${i}`,
      `        expr: ${JSON.stringify(q)}`,
    ]),
  ].join('\n')
  const dir = mkdtempSync(path.join(tmpdir(), 'linksec-grafana-'))
  try {
    writeFileSync(path.join(dir, 'rules.yml'), rules + '\n')
    const r = spawnSync('promtool', ['check', 'rules', 'rules.yml'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`)
    assert.match(r.stdout, new RegExp(`SUCCESS: ${filled.length} rules found`))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
