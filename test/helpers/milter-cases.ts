/**
 * Runs one case of test/cases/ through the milter app over a real socket,
 * driven the way Postfix drives a milter (test/helpers/milter-client.ts), and
 * reads the decision, the reply and the header edits off the milter's answer.
 */
import { PACKAGE_CONFIG_DIR, parseConfig } from '../../core/config'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { startMilterService } from '../../milter/server'
import type { MilterResponse } from '../../milter/wire/types'
import { CASE_AUTHSERV_ID, type Case, type Decision, type Step } from '../cases/load'
import { MilterClient, runTransaction, splitMessage, type TransactionResult } from './milter-client'

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

export function decisionOf(r: TransactionResult): Decision {
  const f = r.final
  if (f.type === 'replyCode') return f.text.startsWith('5') ? 'REJECT' : 'TEMPFAIL'
  if (f.type === 'reject') return 'REJECT'
  if (f.type === 'tempfail') return 'TEMPFAIL'
  if (f.type === 'discard') return 'DISCARD'
  if (r.modifications.some((m) => m.type === 'quarantine')) return 'QUARANTINE'
  return 'ACCEPT'
}

export function stepOf(r: TransactionResult): Step {
  return r.step === 'header' || r.step === 'eoh' || r.step === 'body' ? 'data' : r.step
}

export function replyOf(f: MilterResponse): string {
  if (f.type === 'replyCode') return f.text
  return { reject: '550 5.7.1', tempfail: '451 4.7.1' }[f.type as string] ?? ''
}

export async function runCaseThroughMilter(c: Case): Promise<TransactionResult> {
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

/** What the milter added (insert/add header) and removed (change header to empty), in order. */
export function milterEdits(r: TransactionResult): {
  added: Array<{ name: string; value: string }>
  removed: Array<{ name: string; index: number }>
} {
  return {
    added: r.modifications.flatMap((m) =>
      // Unfolded (RFC 5322 §2.2.3): the milter folds long values at 78 columns.
      m.type === 'insertHeader' || m.type === 'addHeader'
        ? [{ name: m.name, value: m.value.replace(/\r?\n(?=[ \t])/g, '') }]
        : [],
    ),
    removed: r.modifications.flatMap((m) =>
      m.type === 'changeHeader' && m.value === '' ? [{ name: m.name.toLowerCase(), index: m.index }] : [],
    ),
  }
}
