/**
 * examples/prometheus: the scrape config and alert rules load in promtool,
 * the rules' own unit tests pass, and every metric they name is one linksec
 * exports.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import { needTools } from '../helpers/tools'
import { exportedMetricNames, metricNamesIn } from './examples-helpers'

const DIR = path.resolve(__dirname, '../../../examples/prometheus')

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

test('promtool check rules accepts the alert rules', (t) => {
  if (!needTools(t, { promtool: 'prometheus' })) return
  const r = promtool('check', 'rules', 'linksec-rules.yml')
  assert.equal(r.status, 0, r.output)
  assert.match(r.output, /SUCCESS: \d+ rules found/)
})

test('the alert rules pass their promtool unit tests', (t) => {
  if (!needTools(t, { promtool: 'prometheus' })) return
  const r = promtool('test', 'rules', 'linksec-rules.test.yml')
  assert.equal(r.status, 0, r.output)
  assert.match(r.output, /SUCCESS/)
})

test('promtool check config accepts the scrape config (and loads the rules from it)', (t) => {
  if (!needTools(t, { promtool: 'prometheus' })) return
  const r = promtool('check', 'config', 'prometheus.yml')
  assert.equal(r.status, 0, r.output)
  assert.match(r.output, /SUCCESS: 1 rule files found/)
})

test('the alerts the issue asks for exist', () => {
  const rules = readFileSync(path.join(DIR, 'linksec-rules.yml'), 'utf8')
  for (const alert of [
    'LinksecDowngradeRefused',
    'LinksecForgedSenders',
    'LinksecKeyLookupsFailing',
    'LinksecMilterProtocolErrors',
  ])
    assert.match(rules, new RegExp(`- alert: ${alert}\\n`), alert)
})

test('every linksec metric in the rules is one linksec exports', async () => {
  const exported = await exportedMetricNames()
  const named = metricNamesIn(readFileSync(path.join(DIR, 'linksec-rules.yml'), 'utf8'))
  assert.ok(named.size >= 5)
  for (const name of named) assert.ok(exported.has(name), `${name} is exported`)
})
