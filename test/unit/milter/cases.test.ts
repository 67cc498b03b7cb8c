/**
 * Runs every case in test/cases/ through the milter app over a real socket,
 * driven the way Postfix drives a milter, and checks DECISION@step, the
 * reply and the header edits. The Haraka plugin runs the same cases.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PACKAGE_CONFIG_DIR, parseConfig } from '../../../core/config'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime } from '../../../core/runtime'
import { startMilterService } from '../../../milter/server'
import type { MilterResponse } from '../../../milter/wire/types'
import { CASE_AUTHSERV_ID, loadCases, parseCase, type Case, type Decision, type Step } from '../../cases/load'
import {
  MilterClient,
  runTransaction,
  splitMessage,
  type TransactionResult,
} from '../../helpers/milter-client'

/**
 * No case may reach the network: DNS goes to a loopback port where nothing
 * answers, and the policy engine's network sources are off, so a recipient
 * domain is judged by the static list alone (a case may switch them on). With
 * them on, every tagged case would meet a failed lookup: 451 4.4.3, which
 * test/unit/milter/app.test.ts checks on purpose.
 */
const OFFLINE = {
  resolver: { servers: '127.0.0.1:9', timeout_ms: '200' },
  policy: { txt: 'false', mta_sts: 'false', dane: 'false' },
}

function decisionOf(r: TransactionResult): Decision {
  const f = r.final
  if (f.type === 'replyCode') return f.text.startsWith('5') ? 'REJECT' : 'TEMPFAIL'
  if (f.type === 'reject') return 'REJECT'
  if (f.type === 'tempfail') return 'TEMPFAIL'
  if (f.type === 'discard') return 'DISCARD'
  if (r.modifications.some((m) => m.type === 'quarantine')) return 'QUARANTINE'
  return 'ACCEPT'
}

function stepOf(r: TransactionResult): Step {
  return r.step === 'header' || r.step === 'eoh' || r.step === 'body' ? 'data' : r.step
}

function replyOf(f: MilterResponse): string {
  if (f.type === 'replyCode') return f.text
  return { reject: '550 5.7.1', tempfail: '451 4.7.1' }[f.type as string] ?? ''
}

async function runCase(c: Case): Promise<TransactionResult> {
  const config = parseConfig(
    {
      ...OFFLINE,
      ...c.config,
      policy: { ...OFFLINE.policy, ...c.config.policy },
      main: { ...c.config.main, authserv_id: CASE_AUTHSERV_ID },
    },
    PACKAGE_CONFIG_DIR,
  )
  const rt = createRuntime(config, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
  const svc = await startMilterService(rt, { listen: 'inet:127.0.0.1:0' })
  const client = await MilterClient.connect(svc.address)
  try {
    await client.negotiate()
    const { headers, body } = splitMessage(c.message)
    return await runTransaction(client, {
      client: { host: c.client.host, address: c.client.address },
      helo: c.client.helo,
      tls: c.tls ?? undefined,
      mail: [c.mail.from, ...c.mail.params],
      rcpt: c.rcpt.map((r) => [r]),
      headers,
      body,
    })
  } finally {
    await client.quit()
    await svc.close(0)
  }
}

describe('test/cases through the milter', () => {
  const cases = loadCases()
  it('has cases to run', () => assert.ok(cases.length > 0))
  it('refuses a case whose decision is not DECISION@step', () => {
    const raw = { mail: { from: '<a@b>' }, rcpt: ['<c@d>'], message: '', expect: { decision: 'MAYBE@eom' } }
    assert.throws(() => parseCase('bad', raw), /expect\.decision must be DECISION@step/)
  })
  for (const c of cases) {
    it(`${c.name}: ${c.description} (${c.expect.decision}@${c.expect.step})`, async () => {
      const r = await runCase(c)
      assert.equal(
        `${decisionOf(r)}@${stepOf(r)}`,
        `${c.expect.decision}@${c.expect.step}`,
        JSON.stringify(r.final),
      )
      if (c.expect.reply) assert.ok(replyOf(r.final).startsWith(c.expect.reply), replyOf(r.final))
      const added = r.modifications.flatMap((m) =>
        m.type === 'insertHeader' || m.type === 'addHeader' ? [{ name: m.name, value: m.value }] : [],
      )
      for (const h of c.expect.addsHeaders)
        assert.ok(
          added.some((a) => a.name === h.name && a.value === h.value),
          `${h.name}: ${h.value} not added; added ${JSON.stringify(added)}`,
        )
      const removed = r.modifications.flatMap((m) =>
        m.type === 'changeHeader' && m.value === '' ? [{ name: m.name.toLowerCase(), index: m.index }] : [],
      )
      for (const h of c.expect.removesHeaders)
        assert.ok(
          removed.some((x) => x.name === h.name.toLowerCase() && x.index === h.index),
          `${h.name} #${h.index} not removed`,
        )
    })
  }
})
