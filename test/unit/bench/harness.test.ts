import { test } from 'node:test'
import * as assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { listBenchmarks, missingDeclared } from '../../../bench/lib/discover'
import { executeBench } from '../../../bench/lib/execute'
import { ProgressBar, renderBar, type ProgressSink } from '../../../bench/lib/progress'
import { readResults, writeResults, type RecordedResult } from '../../../bench/lib/results'
import { parseFlags } from '../../../bench/lib/standalone'
import { formatResult, formatTable } from '../../../bench/lib/table'
import { atLeast, atMost } from '../../../bench/lib/types'
import { machineFacts } from '../../../bench/lib/machine'

function sink(isTTY: boolean): ProgressSink & { out: string[] } {
  const out: string[] = []
  return { isTTY, columns: 80, out, write: (t: string) => out.push(t) }
}

test('renderBar clamps the fraction and shows the percentage', () => {
  assert.equal(renderBar(0.5, 'x', 10), '[#####-----]  50% x')
  assert.equal(renderBar(2, 'x', 4), '[####] 100% x')
  assert.equal(renderBar(NaN, 'x', 4), '[----]   0% x')
})

test('progress without a TTY prints a line per label change or 10 %, not per update', () => {
  const s = sink(false)
  const bar = new ProgressBar(s)
  for (let i = 0; i <= 100; i++) bar.update(i / 100, 'round 1')
  bar.update(1, 'round 2')
  assert.equal(s.out.length, 12)
  assert.ok(s.out.every((l) => l.endsWith('\n') && !l.includes('\r')))
})

test('progress on a TTY redraws one line and clears it when done', () => {
  const s = sink(true)
  const bar = new ProgressBar(s)
  bar.update(0.1, 'a')
  bar.update(0.2, 'a')
  bar.done()
  assert.ok(s.out.slice(0, 2).every((l) => l.startsWith('\r') && !l.includes('\n')))
  assert.equal(s.out.at(-1), '\r\x1b[2K')
})

test('formatTable aligns the union of the row keys', () => {
  const text = formatTable([
    { config: 'no milter', 'msg/s': 734 },
    { config: 'opendkim', 'msg/s': 219, note: 'x' },
  ])
  const lines = text.trim().split('\n')
  assert.equal(lines.length, 4)
  assert.match(lines[0]!, /\| config +\| msg\/s \| note \|/)
  assert.ok(lines.every((l) => l.length === lines[0]!.length))
  assert.match(formatTable([{ a: NaN }]), /n\/a/)
})

test('formatResult shows ratios, goals met or missed, notes and errors', () => {
  const text = formatResult({
    name: 'demo',
    rows: [{ a: 1 }],
    ratios: { 'b/a': 0.97 },
    goals: { 'b/a': atLeast(0.97, 0.95), mem: atMost(200, 150) },
    notes: ['labelled honestly'],
    error: 'boom',
  })
  assert.match(text, /ratio b\/a = 0\.970/)
  assert.match(text, /goal {2}b\/a: 0\.970 vs 0\.95 -> MET/)
  assert.match(text, /goal {2}mem: 200\.000 vs 150 -> MISSED/)
  assert.match(text, /note: labelled honestly/)
  assert.match(text, /ERROR: boom/)
})

test('goals are not met by NaN', () => {
  assert.equal(atLeast(NaN, 0.9).met, false)
  assert.equal(atMost(NaN, 150).met, false)
})

test('parseFlags reads --quick, --only and rejects unknown flags', () => {
  assert.deepEqual(parseFlags(['--quick', '--only', 'a,b', '--only', 'c']), {
    quick: true,
    only: ['a', 'b', 'c'],
    list: false,
  })
  assert.throws(() => parseFlags(['--fast']), /unknown option '--fast'.*use --quick/i)
})

test('discovery runs declared benchmarks first, then component ones by name', () => {
  const entries = [
    'run.js',
    'verify-ed25519.js',
    'memory.js',
    'milter.js',
    'postfix-e2e.js',
    'x.js',
    'milter.js.map',
  ]
  const names = listBenchmarks('/b', entries).map((m) => m.name)
  assert.deepEqual(names, ['postfix-e2e', 'memory', 'milter', 'verify-ed25519'])
  assert.deepEqual(missingDeclared('/b', entries), ['haraka-e2e'])
})

test('executeBench records a thrown error and a budget overrun instead of crashing', async () => {
  const bar = new ProgressBar(sink(false))
  const failed = await executeBench({
    name: 'bad',
    run: () => Promise.reject(new Error('peer missing')),
    quick: true,
    budgetMs: 1000,
    bar,
    prefix: 'bad',
  })
  assert.equal(failed.error, 'peer missing')
  let sawAbort = false
  const slow = await executeBench({
    name: 'slow',
    run: (opts) =>
      new Promise((_resolve, reject) => {
        opts.signal?.addEventListener('abort', () => {
          sawAbort = true
          reject(new Error('stopped'))
        })
      }),
    quick: true,
    budgetMs: 20,
    bar,
    prefix: 'slow',
  })
  assert.equal(sawAbort, true)
  assert.match(slow.error ?? '', /time budget/)
})

test('writeResults merges by name and keeps other entries', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-results-'))
  try {
    const file = path.join(dir, 'results.json')
    const entry = (name: string, value: number): RecordedResult => ({
      name,
      rows: [{ v: value }],
      ratios: { r: value },
      ranAt: 'now',
      quick: true,
      seconds: 1,
    })
    const machine = machineFacts(new Date(0))
    writeResults(file, machine, [entry('a', 1), entry('b', NaN)])
    writeResults(file, machine, [entry('a', 2)])
    const read = readResults(file)
    assert.ok(read)
    assert.deepEqual(Object.keys(read.benchmarks).sort(), ['a', 'b'])
    assert.equal(read.benchmarks.a?.ratios.r, 2)
    assert.equal(read.benchmarks.b?.ratios.r, null)
    assert.equal(read.machine.date, new Date(0).toISOString())
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('executeBench adds the host check (Ed25519 µs before and after) to a result', async () => {
  const r = await executeBench({
    name: 'ok',
    run: async () => ({ name: 'ok', rows: [], ratios: {}, notes: ['its own note'] }),
    quick: true,
    budgetMs: 1000,
    bar: new ProgressBar(sink(false)),
    prefix: 'ok',
  })
  const [before, after] = r.hostEd25519Micros ?? []
  assert.ok(before! > 0 && after! > 0, 'both measured')
  assert.equal(r.notes?.[0], 'its own note')
  assert.match(r.notes?.at(-1) ?? '', new RegExp(`host check: .* ${before} µs before and ${after} µs after`))
})
