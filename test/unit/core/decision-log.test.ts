import { test } from 'node:test'
import assert from 'node:assert/strict'
import { logDecision } from '../../../core/decision-log'
import { createLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime, type Runtime } from '../../../core/runtime'
import { defaultConfig, parseConfig } from '../../../core/config'
import { internalError, reject } from '../../../core/verdict'

function runtimeWithLines(
  level: 'debug' | 'info' | 'warn' = 'info',
  decisions?: 'notable' | 'all',
): { rt: Runtime; lines: string[] } {
  const lines: string[] = []
  const log = createLogger({ level, write: (l) => lines.push(l) })
  const config = decisions ? parseConfig({ log: { decisions } }, '/tmp') : defaultConfig('/tmp')
  const rt = createRuntime(config, { log, metrics: createMetrics({ processMetrics: false }) })
  return { rt, lines }
}

async function count(rt: Runtime, adapter: string, verdict: string): Promise<number> {
  const m = await rt.metrics.messages.get()
  return m.values.find((v) => v.labels.adapter === adapter && v.labels.verdict === verdict)?.value ?? 0
}

test('a reject is one JSON line with every field and one count', async () => {
  const { rt, lines } = runtimeWithLines()
  const v = reject(550, '5.7.10', 'needs TLS', 'tagged_plaintext')
  logDecision(rt, { adapter: 'milter', queueId: '4XyZ1', verdict: v, level: 3, senderDomain: 'Example.NET' })
  assert.equal(lines.length, 1)
  const rec = JSON.parse(lines[0]!)
  assert.equal(rec.msg, 'decision')
  assert.equal(rec.level, 'info', 'the log level is not overwritten')
  assert.equal(rec.link_level, 3)
  assert.equal(rec.adapter, 'milter')
  assert.equal(rec.queue_id, '4XyZ1')
  assert.equal(rec.verdict, 'reject')
  assert.equal(rec.reason, 'tagged_plaintext')
  assert.equal(rec.code, 550)
  assert.equal(rec.enhanced, '5.7.10')
  assert.equal(rec.sender_domain, 'example.net')
  assert.equal(await count(rt, 'milter', 'reject'), 1)
})

test('a routine message (goes on, untagged) is logged at debug by default, at info under decisions=all; a tagged one at info', async () => {
  const quiet = runtimeWithLines('debug')
  logDecision(quiet.rt, { adapter: 'milter', verdict: 'continue' })
  logDecision(quiet.rt, { adapter: 'milter', verdict: 'continue', level: 2 })
  logDecision(quiet.rt, { adapter: 'milter', verdict: 'accept', level: 'requiretls' })
  assert.deepEqual(
    quiet.lines.map((l) => [JSON.parse(l).level, JSON.parse(l).link_level]),
    [
      ['debug', undefined],
      ['info', 2],
      ['info', 'requiretls'],
    ],
  )
  assert.equal(await count(quiet.rt, 'milter', 'continue'), 2, 'counted either way')
  const all = runtimeWithLines('info', 'all')
  logDecision(all.rt, { adapter: 'milter', verdict: 'continue' })
  assert.equal(JSON.parse(all.lines[0]!).level, 'info')
})

test('an action string works and missing fields are left out', async () => {
  const { rt, lines } = runtimeWithLines('info', 'all')
  logDecision(rt, { adapter: 'haraka', verdict: 'accept', reason: 'untagged' })
  logDecision(rt, { adapter: 'haraka', verdict: 'accept', reason: 'untagged' })
  const rec = JSON.parse(lines[0]!)
  assert.equal(rec.reason, 'untagged')
  assert.ok(!('queue_id' in rec))
  assert.ok(!('sender_domain' in rec))
  assert.equal(await count(rt, 'haraka', 'accept'), 2)
})

test('tempfails log at warn, so a warn-level logger still shows them', async () => {
  const { rt, lines } = runtimeWithLines('warn')
  logDecision(rt, { adapter: 'milter', verdict: 'accept' })
  logDecision(rt, { adapter: 'milter', verdict: internalError('dns_timeout') })
  assert.equal(lines.length, 1)
  const rec = JSON.parse(lines[0]!)
  assert.equal(rec.verdict, 'tempfail')
  assert.equal(rec.reason, 'dns_timeout')
  assert.equal(await count(rt, 'milter', 'accept'), 1)
})
