import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { defaultConfig, parseConfig } from '../../../core/config'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime, type Runtime } from '../../../core/runtime'
import { CONTINUE } from '../../../core/verdict'
import { messageStep, inboundLinkStep } from '../../../core/message'
import { createMilterApp, headerActions } from '../../../milter/app'
import { MacroStore } from '../../../milter/macros'
import type { SessionFacts, Transaction } from '../../../milter/session'
import { Cmd } from '../../../milter/wire/codes'

function runtime(ini: Record<string, Record<string, string>> = {}): Runtime {
  const config = parseConfig({ main: { authserv_id: 'mx.example.net' }, ...ini }, '/tmp')
  return createRuntime(config, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
}

function facts(
  opts: { tls?: boolean; headers?: Array<[string, string]>; mailArgs?: string[] } = {},
): SessionFacts {
  const macros = new MacroStore()
  macros.set(
    Cmd.helo,
    opts.tls
      ? [
          ['{tls_version}', 'TLSv1.3'],
          ['{cipher}', 'TLS_AES_256_GCM_SHA384'],
          ['{cipher_bits}', '256'],
        ]
      : [],
  )
  macros.set(Cmd.endOfMessage, [['i', 'Q1']])
  const transaction: Transaction = {
    sender: '<alice@example.org>',
    senderArgs: opts.mailArgs ?? [],
    recipients: [{ address: '<bob@example.net>', args: [] }],
    headers: (opts.headers ?? [['Subject', 'hi']]).map(([name, value]) => ({ name, value })),
    body: [],
    bodyBytes: 0,
    bodyTruncated: false,
  }
  return { id: 7, macros, helo: 'client.example.test', transaction }
}

async function metricValue(rt: Runtime, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await rt.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name)
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return v ? v.value : 0
}

/** The app with the inbound-link policy alone (other policies join the default list over time). */
const inboundApp = (rt: Runtime) => createMilterApp(rt, { steps: [inboundLinkStep] })

describe('milter app: the inbound link policy', () => {
  it('adds x-tls=none at the top for a plaintext message and lets it through', async () => {
    const rt = runtime()
    const r = await inboundApp(rt).endOfMessage(facts())
    assert.deepEqual(r.modifications, [
      { type: 'insertHeader', index: 0, name: 'Authentication-Results', value: 'mx.example.net; x-tls=none' },
    ])
    assert.deepEqual(r.final, { type: 'continue' })
    assert.equal(
      await metricValue(rt, 'linksec_messages_total', { adapter: 'milter', verdict: 'continue' }),
      1,
    )
    assert.equal(await metricValue(rt, 'linksec_inbound_messages_total', { adapter: 'milter', tls: 'no' }), 1)
  })

  it('names the TLS version and cipher for a message that came over STARTTLS', async () => {
    const r = await inboundApp(runtime()).endOfMessage(facts({ tls: true }))
    assert.deepEqual(r.modifications, [
      {
        type: 'insertHeader',
        index: 0,
        name: 'Authentication-Results',
        value:
          'mx.example.net; x-tls=pass smtp.version=TLSv1.3 smtp.cipher=TLS_AES_256_GCM_SHA384 smtp.bits=256',
      },
    ])
  })

  it('rejects a tagged message over plaintext with 550 5.7.10 and a sentence', async () => {
    const rt = runtime()
    const r = await inboundApp(rt).endOfMessage(facts({ headers: [['Link-Security-Required', '3']] }))
    assert.equal(r.final.type, 'replyCode')
    assert.match(
      (r.final as { text: string }).text,
      /^550 5\.7\.10 this message is tagged Link-Security-Required: 3 .*STARTTLS$/,
    )
    assert.equal(
      await metricValue(rt, 'linksec_tagged_messages_total', { level: '3', outcome: 'rejected_plaintext' }),
      1,
    )
  })

  it('lets a tagged message over TLS through, and honours TLS-Required: No over plaintext', async () => {
    const app = inboundApp(runtime())
    assert.deepEqual(
      (await app.endOfMessage(facts({ tls: true, headers: [['Link-Security-Required', '3']] }))).final,
      {
        type: 'continue',
      },
    )
    const optional = facts({
      headers: [
        ['Link-Security-Required', '2'],
        ['TLS-Required', 'No'],
      ],
    })
    assert.deepEqual((await app.endOfMessage(optional)).final, { type: 'continue' })
  })

  it('reads REQUIRETLS from the MAIL arguments (Postfix 3.11+ passes it on)', async () => {
    const r = await inboundApp(runtime()).endOfMessage(facts({ mailArgs: ['REQUIRETLS'] }))
    assert.match((r.final as { text: string }).text, /^550 5\.7\.10 .*REQUIRETLS/)
  })

  it('removes forged Authentication-Results claiming our authserv-id, highest index first, before inserting ours', async () => {
    const headers: Array<[string, string]> = [
      ['Authentication-Results', 'mx.example.net; x-tls=pass'],
      ['Authentication-Results', 'other.example; spf=pass'],
      ['authentication-results', 'MX.example.net; x-openpgp=pass'],
    ]
    const r = await inboundApp(runtime()).endOfMessage(facts({ headers }))
    assert.deepEqual(
      r.modifications.map((m) => [m.type, 'index' in m ? m.index : -1, 'value' in m ? m.value : '']),
      [
        ['changeHeader', 3, ''],
        ['changeHeader', 1, ''],
        ['insertHeader', 0, 'mx.example.net; x-tls=none'],
      ],
    )
  })

  it('obeys [inbound] switches', async () => {
    const rt = runtime({ inbound: { tls_results: 'false', reject_tagged_plaintext: 'false' } })
    const r = await inboundApp(rt).endOfMessage(facts({ headers: [['Link-Security-Required', '3']] }))
    assert.deepEqual(r, { modifications: [], final: { type: 'continue' } })
  })
})

describe('milter app: the policy pipeline', () => {
  it('answers 451 4.3.0 when a policy throws, and counts it by policy', async () => {
    const rt = runtime()
    const broken = messageStep('broken', async () => {
      throw new Error('key server exploded')
    })
    const r = await createMilterApp(rt, { steps: [broken] }).endOfMessage(facts())
    assert.match((r.final as { text: string }).text, /^451 4\.3\.0 /)
    assert.equal(
      await metricValue(rt, 'linksec_internal_errors_total', { adapter: 'milter', stage: 'broken' }),
      1,
    )
  })

  it('answers 451 4.3.0 when policies run past the deadline', async () => {
    const slow = messageStep(
      'slow',
      () => new Promise((resolve) => setTimeout(() => resolve({ verdict: CONTINUE, headers: [] }), 500)),
    )
    const r = await createMilterApp(runtime(), { steps: [slow], deadlineMs: 20 }).endOfMessage(facts())
    assert.match((r.final as { text: string }).text, /^451 4\.3\.0 /)
  })

  it('stops at the first decisive verdict but keeps the header edits of the policies that ran', async () => {
    const calls: string[] = []
    const tag = messageStep('tag', async () => {
      calls.push('tag')
      return { verdict: CONTINUE, headers: [{ op: 'append', name: 'X-A', value: '1' }] }
    })
    const quarantine = messageStep('q', async () => {
      calls.push('q')
      return {
        verdict: { action: 'quarantine', reason: 'bad_signature', text: 'signature failed' },
        headers: [],
      }
    })
    const never = messageStep('never', async () => {
      calls.push('never')
      return { verdict: CONTINUE, headers: [] }
    })
    const r = await createMilterApp(runtime(), { steps: [tag, quarantine, never] }).endOfMessage(facts())
    assert.deepEqual(calls, ['tag', 'q'])
    assert.deepEqual(r.modifications, [
      { type: 'addHeader', name: 'X-A', value: '1' },
      { type: 'quarantine', reason: 'signature failed' },
    ])
    assert.deepEqual(r.final, { type: 'continue' })
  })

  it('asks Postfix for the body only when a policy needs it', () => {
    const rt = runtime()
    assert.equal(inboundApp(rt).needs.events.body, 'none')
    const reader = messageStep('reader', async () => ({ verdict: CONTINUE, headers: [] }), {
      needsBody: true,
    })
    const app = createMilterApp(rt, { steps: [reader] })
    assert.equal(app.needs.events.body, 'observe')
    assert.equal(app.maxBodyBytes, defaultConfig().verify.max_message_bytes)
  })

  it('keeps prepended headers in the order given', () => {
    assert.deepEqual(
      headerActions([
        { op: 'prepend', name: 'A', value: '1' },
        { op: 'prepend', name: 'B', value: '2' },
      ]).map((m) => ('name' in m ? m.name : '')),
      ['B', 'A'],
    )
  })
})
