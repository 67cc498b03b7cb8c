import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { inboundLinkStep, messageView, runMessage, type StepDecision } from '../../../core/message'
import type { Runtime } from '../../../core/runtime'
import { cipherBits, tlsFactsOf } from '../../../plugins/inbound'
import { applyResult, harakaProfile, messageFacts } from '../../../plugins/message'
import { connectionWith, runtimeWith, type RawIni } from './fakes'

/** The inbound-link step (core/message/inbound-link.ts) on the facts the Haraka adapter builds. */
function context(raw: RawIni, opts: Parameters<typeof connectionWith>[0]) {
  const rt = runtimeWith(raw)
  const conn = connectionWith(opts)
  const facts = messageFacts(conn, conn.transaction)
  return { rt, conn, facts, view: messageView(facts, harakaProfile(rt)) }
}

const inboundStep = (m: ReturnType<typeof context>) => inboundLinkStep.run(m.view, m.rt) as StepDecision

/** The whole pipeline with the inbound-link step alone. */
async function pipeline(m: ReturnType<typeof context>, rt: Runtime = m.rt) {
  const r = await runMessage(rt, m.facts, harakaProfile(rt), { steps: [inboundLinkStep] })
  applyResult(m.conn.transaction, m.facts, r)
  return r
}

describe('TLS facts from connection.tls', () => {
  it('derives key bits from the OpenSSL cipher name', () => {
    assert.equal(cipherBits('TLS_AES_256_GCM_SHA384'), 256)
    assert.equal(cipherBits('ECDHE-RSA-AES128-GCM-SHA256'), 128)
    assert.equal(cipherBits('TLS_CHACHA20_POLY1305_SHA256'), 256)
    assert.equal(cipherBits('NULL-SHA'), undefined)
  })

  it('reads version and cipher; a plaintext session has none', () => {
    assert.deepEqual(tlsFactsOf(connectionWith({ tls: true })), {
      version: 'TLSv1.3',
      cipher: 'TLS_AES_256_GCM_SHA384',
      cipherBits: 256,
    })
    assert.deepEqual(tlsFactsOf(connectionWith()), {})
  })
})

describe('the inbound-link step on Haraka facts', () => {
  it('rejects a tagged plaintext message 550 5.7.10 and counts it', async () => {
    const m = context({}, { headerLines: ['Link-Security-Required: 2'] })
    const d = await pipeline(m)
    assert.equal(d.verdict.action, 'reject')
    assert.equal(`${d.verdict.code} ${d.verdict.enhanced}`, '550 5.7.10')
    assert.deepEqual(d.headers, [])
    const tagged = await m.rt.metrics.taggedMessages.get()
    assert.deepEqual(
      tagged.values.map((v) => [v.labels, v.value]),
      [[{ level: '2', outcome: 'rejected_plaintext' }, 1]],
    )
  })

  it('lets TLS-Required: No through, and a tagged TLS message', () => {
    assert.equal(
      inboundStep(context({}, { headerLines: ['Link-Security-Required: 3', 'TLS-Required: No'] })).verdict
        .action,
      'continue',
    )
    assert.equal(
      inboundStep(context({}, { tls: true, headerLines: ['Link-Security-Required: 3'] })).verdict.action,
      'continue',
    )
  })

  it('deletes fields claiming our authserv-id and prepends our own', () => {
    const m = context(
      {},
      {
        tls: true,
        headerLines: [
          'Authentication-Results: other.example; spf=pass',
          'Authentication-Results: MX.test; x-tls=pass',
          'Original-Authentication-Results: mx.test (forged); dkim=pass',
        ],
      },
    )
    assert.deepEqual(inboundStep(m).headers, [
      { op: 'delete', name: 'Authentication-Results', index: 2 },
      { op: 'delete', name: 'Original-Authentication-Results', index: 1 },
      {
        op: 'prepend',
        name: 'Authentication-Results',
        value: 'mx.test; x-tls=pass smtp.version=TLSv1.3 smtp.cipher=TLS_AES_256_GCM_SHA384 smtp.bits=256',
      },
    ])
  })

  it('switched off: no reject, no header of its own (forged ones still go)', () => {
    const raw = { inbound: { reject_tagged_plaintext: false, tls_results: false } }
    const d = inboundStep(
      context(raw, { headerLines: ['Link-Security-Required: 3', 'Authentication-Results: mx.test; x=1'] }),
    )
    assert.equal(d.verdict.action, 'continue')
    assert.deepEqual(d.headers, [{ op: 'delete', name: 'Authentication-Results', index: 1 }])
  })

  it('records the requirement and link in transaction.notes.linksec', async () => {
    const m = context({}, { tls: true, headerLines: ['Link-Security-Required: 4'] })
    await pipeline(m)
    const notes = m.conn.transaction.notes.linksec as {
      requirement: { level: number }
      inbound: { tls: boolean }
    }
    assert.equal(notes.requirement.level, 4)
    assert.equal(notes.inbound.tls, true)
  })
})
