/**
 * Throughput through a private Postfix, measured the way
 * shared/reference/real-peers.md §5 measured the baselines: smtp-source with
 * N parallel sessions (one SMTP session, hence one milter connection, per
 * message); "delivered" = until the queue is empty again and the log shows N
 * more `status=sent` lines.
 */
import { performance } from 'node:perf_hooks'
import { runCommand } from './peers'
import { logCounts, logTail, waitQueueEmpty, type PostfixInstance } from './postfix'

export interface LoadSpec {
  sessions: number
  count: number
  /** Pre-formatted message (LF lines); smtp-source dot-stuffs and sends CRLF. */
  messageFile: string
  from: string
  to: string
  timeoutMs: number
}

export interface LoadOutcome {
  count: number
  injectedSeconds: number
  deliveredSeconds: number
  /** Delivered messages per second (count / delivered time). */
  rate: number
  sent: number
  rejected: number
  deferred: number
  sourceErrors: string[]
}

export async function pushLoad(pf: PostfixInstance, spec: LoadSpec): Promise<LoadOutcome> {
  if (!(await waitQueueEmpty(pf, 10_000))) throw new Error(`queue of ${pf.dir} not empty before the run`)
  const before = logCounts(pf)
  const t0 = performance.now()
  const args = ['-s', String(spec.sessions), '-m', String(spec.count), '-F', spec.messageFile]
  args.push('-f', spec.from, '-t', spec.to, '-M', 'client.example.test', `127.0.0.1:${pf.port}`)
  const r = await runCommand('smtp-source', args, {}, spec.timeoutMs)
  const t1 = performance.now()
  const emptied = await waitQueueEmpty(pf, spec.timeoutMs)
  const t2 = performance.now()
  if (!emptied) throw new Error(`queue not empty after ${spec.timeoutMs} ms: ${logTail(pf)}`)
  const after = await settledCounts(pf, before.sent + spec.count)
  return {
    count: spec.count,
    injectedSeconds: (t1 - t0) / 1000,
    deliveredSeconds: (t2 - t0) / 1000,
    rate: spec.count / ((t2 - t0) / 1000),
    sent: after.sent - before.sent,
    rejected: after.rejected - before.rejected,
    deferred: after.deferred - before.deferred,
    sourceErrors: r.stderr.split('\n').filter((l) => l.trim() !== ''),
  }
}

/** postlogd writes asynchronously: wait (up to 2 s) for the expected `status=sent` lines. */
async function settledCounts(pf: PostfixInstance, expectedSent: number) {
  const end = Date.now() + 2000
  let counts = logCounts(pf)
  while (counts.sent < expectedSent && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50))
    counts = logCounts(pf)
  }
  return counts
}
