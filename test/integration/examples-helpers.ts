import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
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

const POSTFIX_EXAMPLE = path.resolve(__dirname, '../../../examples/postfix')

/**
 * Installs examples/postfix into a Postfix config directory the way an
 * operator does: main.cf lines with `postconf -e`, master.cf lines appended,
 * map files beside them. /etc/postfix/ becomes `conf`, and the default
 * milter/socketmap ports become the test's when given.
 */
export function installPostfixExample(
  conf: string,
  ports?: { milter: number; socketmap: number },
): [string, string][] {
  const rewrite = (s: string) => {
    let out = s.replaceAll('/etc/postfix/', `${conf}/`)
    if (ports)
      out = out
        .replaceAll('127.0.0.1:8891', `127.0.0.1:${ports.milter}`)
        .replaceAll('127.0.0.1:8461', `127.0.0.1:${ports.socketmap}`)
    return out
  }
  const read = (f: string) => rewrite(readFileSync(path.join(POSTFIX_EXAMPLE, f), 'utf8'))
  for (const f of readdirSync(POSTFIX_EXAMPLE))
    if (!['main.cf', 'master.cf', 'README.md'].includes(f)) writeFileSync(path.join(conf, f), read(f))
  const settings = mainCfSettings(read('main.cf'))
  const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
  const r = spawnSync('postconf', ['-c', conf, '-e', ...settings.map(([k, v]) => `${k} = ${v}`)], {
    encoding: 'utf8',
    env,
    timeout: 60_000,
  })
  assert.equal(r.status, 0, r.stderr)
  if (existsSync(path.join(POSTFIX_EXAMPLE, 'master.cf')))
    appendFileSync(path.join(conf, 'master.cf'), '\n' + read('master.cf'))
  return settings
}
