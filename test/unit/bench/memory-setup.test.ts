/**
 * The memory benchmark's setup: which Node options `linksec serve` runs
 * with (the shipped systemd unit's NODE_OPTIONS, or an override), and the
 * per-entry cache cost measurement in its own --expose-gc process.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, test } from 'node:test'
import { entryCostsInChild } from '../../../bench/lib/entry-cost'
import { shippedNodeOptions } from '../../../bench/lib/linksec-serve'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-bench-setup-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))

function unit(text: string): string {
  const file = path.join(dir, `unit-${Math.random().toString(36).slice(2)}.service`)
  fs.writeFileSync(file, text)
  return file
}

function withoutOverride<T>(fn: () => T): T {
  const saved = process.env.LINKSEC_BENCH_NODE_OPTIONS
  delete process.env.LINKSEC_BENCH_NODE_OPTIONS
  try {
    return fn()
  } finally {
    if (saved !== undefined) process.env.LINKSEC_BENCH_NODE_OPTIONS = saved
  }
}

test('serve runs with the NODE_OPTIONS the systemd unit sets, quoted or not', () => {
  withoutOverride(() => {
    const plain = shippedNodeOptions(
      unit('[Service]\nEnvironment=NODE_OPTIONS=--max-old-space-size=512 --x=1\n'),
    )
    assert.deepEqual(plain.args, ['--max-old-space-size=512', '--x=1'])
    assert.match(plain.from, /systemd/)
    const quoted = shippedNodeOptions(unit('[Service]\nEnvironment="NODE_OPTIONS=--max-semi-space-size=4"\n'))
    assert.deepEqual(quoted.args, ['--max-semi-space-size=4'])
  })
})

test('no NODE_OPTIONS in the unit, or no unit: Node defaults, said so', () => {
  withoutOverride(() => {
    const none = shippedNodeOptions(unit('[Service]\nExecStart=/usr/local/bin/linksec serve\n'))
    assert.deepEqual(none, { args: [], from: 'Node defaults (the systemd unit sets no NODE_OPTIONS)' })
    assert.deepEqual(shippedNodeOptions(path.join(dir, 'absent.service')).args, [])
  })
})

test('LINKSEC_BENCH_NODE_OPTIONS overrides the unit', () => {
  const saved = process.env.LINKSEC_BENCH_NODE_OPTIONS
  process.env.LINKSEC_BENCH_NODE_OPTIONS = ' --a  --b=2 '
  try {
    const r = shippedNodeOptions(unit('Environment=NODE_OPTIONS=--c\n'))
    assert.deepEqual(r, { args: ['--a', '--b=2'], from: 'LINKSEC_BENCH_NODE_OPTIONS' })
  } finally {
    if (saved === undefined) delete process.env.LINKSEC_BENCH_NODE_OPTIONS
    else process.env.LINKSEC_BENCH_NODE_OPTIONS = saved
  }
})

test('per-entry cache costs come back from the child for every cache, in a plausible range', async () => {
  const c = await entryCostsInChild(20000)
  assert.equal(c.entries, 20000)
  assert.deepEqual(Object.keys(c.bytes).sort(), ['keys', 'learned', 'policy', 'signaturePolicy'])
  // A parsed key or a full answer per entry would be kilobytes. Small figures
  // carry GC timing noise in the child (17 bytes was seen for ~180-byte
  // entries, and -5 on Node 24 for the policy cache, whose entries share
  // templates): the lower bound only says a finite, near-zero-or-above
  // figure came back.
  for (const [name, bytes] of Object.entries(c.bytes))
    assert.ok(Number.isFinite(bytes) && bytes > -64 && bytes < 1000, `${name}: ${bytes} bytes per entry`)
})
