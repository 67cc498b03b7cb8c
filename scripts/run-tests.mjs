#!/usr/bin/env node
// Runs the compiled tests: unit and property tests in parallel, then the
// integration tests (real peers on loopback) one file at a time, and prints
// one closing line "N passed, N failed, N skipped" over all of them.
// Usage: node scripts/run-tests.mjs [unit|property|integration|fuzz ...]
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync, existsSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const groups = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'property', 'integration']

function find(dir) {
  if (!existsSync(dir)) return []
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) return find(p)
    return name.endsWith('.test.js') ? [p] : []
  })
}

// DNS is the trap: the system resolver is off the machine. Every test process
// (and the linksec/Haraka children they start) refuses to fall back to it.
process.env.LINKSEC_FORBID_SYSTEM_RESOLVER = '1'

const totals = { pass: 0, fail: 0, skipped: 0 }
let failedRun = false
function run(files, concurrency) {
  if (!files.length) return
  const args = [
    '--enable-source-maps',
    '--test',
    '--test-reporter=spec',
    `--test-concurrency=${concurrency}`,
    ...files,
  ]
  const r = spawnSync(process.execPath, args, {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 28,
  })
  process.stdout.write(r.stdout ?? '')
  for (const key of Object.keys(totals)) {
    const m = new RegExp(`^\\S* ?${key} (\\d+)$`, 'm').exec(r.stdout ?? '')
    if (m) totals[key] += Number(m[1])
  }
  if (r.status !== 0) failedRun = true
}

const fast = groups.filter((g) => g !== 'integration').flatMap((g) => find(join(root, 'dist/test', g)))
run(fast, 2)
if (groups.includes('integration')) run(find(join(root, 'dist/test/integration')), 1)
console.log(`\n${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped`)
process.exit(failedRun || totals.fail > 0 ? 1 : 0)
