/**
 * One measurement of one configuration: a fresh private Postfix pointed at
 * the milter under test, a warm-up, a throughput run with smtp-source, and a
 * single-session latency run with our own SMTP client. Also the sink check:
 * one message through a dumping sink, to see the verdict the verifier wrote.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { cpuMs, type RunningMilter } from './milters'
import { startPostfix, stopPostfix, waitQueueEmpty, logTail, type PostfixInstance } from './postfix'
import { pushLoad, type LoadOutcome } from './smtp-source'
import { dataPayload, measureLatencies, timedTransaction } from './smtp-client'
import type { BenchMessage } from './signed-message'

/** What a run needs of a message: the file smtp-source sends and its text. */
export type MessageFile = Pick<BenchMessage, 'file' | 'text'>
import { RECIPIENT, SENDER } from './signed-message'

export interface Counts {
  sessions: number
  messages: number
  warmup: number
  latencyMessages: number
  /** Transactions timed while `sessions` of our clients run in parallel (latency under load). */
  loadedLatencyMessages: number
  timeoutMs: number
}

export interface Measurement {
  load: LoadOutcome
  latenciesMs: number[]
  loadedLatenciesMs: number[]
  /** Milter CPU per delivered message in the throughput run (ms), NaN without a milter. */
  milterCpuMsPerMessage: number
}

const ENVELOPE = { helo: 'client.example.test', from: SENDER, to: RECIPIENT }

export async function measureOnce(
  milter: RunningMilter | undefined,
  msg: MessageFile,
  counts: Counts,
  signal?: AbortSignal,
): Promise<Measurement> {
  const pf = await startPostfix({ milter: milter?.socket })
  try {
    const spec = {
      sessions: counts.sessions,
      messageFile: msg.file,
      from: SENDER,
      to: RECIPIENT,
      timeoutMs: counts.timeoutMs,
    }
    await pushLoad(pf, { ...spec, count: counts.warmup })
    signal?.throwIfAborted()
    const cpu0 = milter ? cpuMs(milter.pid) : NaN
    const load = await pushLoad(pf, { ...spec, count: counts.messages })
    const cpu1 = milter ? cpuMs(milter.pid) : NaN
    checkLoad(pf, load, counts.messages)
    signal?.throwIfAborted()
    const payload = dataPayload(msg.text)
    const latenciesMs = await measureLatencies({
      port: pf.port,
      count: counts.latencyMessages,
      sessions: 1,
      envelope: ENVELOPE,
      payload,
      signal,
    })
    const loadedLatenciesMs = await measureLatencies({
      port: pf.port,
      count: counts.loadedLatencyMessages,
      sessions: counts.sessions,
      envelope: ENVELOPE,
      payload,
      signal,
    })
    await waitQueueEmpty(pf, counts.timeoutMs)
    return { load, latenciesMs, loadedLatenciesMs, milterCpuMsPerMessage: (cpu1 - cpu0) / counts.messages }
  } finally {
    await stopPostfix(pf)
  }
}

/** A run only counts if every message was relayed: a reject or error would flatter the rate. */
function checkLoad(pf: PostfixInstance, load: LoadOutcome, expected: number): void {
  const problems: string[] = []
  if (load.sent < expected) problems.push(`${load.sent} of ${expected} sent`)
  if (load.rejected > 0) problems.push(`${load.rejected} rejected`)
  if (load.sourceErrors.length) problems.push(`smtp-source: ${load.sourceErrors.slice(0, 2).join(' / ')}`)
  if (problems.length) throw new Error(`${problems.join(', ')}; maillog: ${logTail(pf, 3)}`)
}

/**
 * Sends one message through a Postfix whose sink keeps it and returns the
 * header lines matching `pattern` (e.g. the Authentication-Results the
 * milter added), so the table can show that verification really passed.
 */
export async function sinkCheck(
  milter: RunningMilter | undefined,
  msg: MessageFile,
  pattern: RegExp,
): Promise<string[]> {
  const pf = await startPostfix({ milter: milter?.socket, sinkDump: true })
  try {
    await timedTransaction(pf.port, ENVELOPE, dataPayload(msg.text))
    if (!(await waitQueueEmpty(pf, 20_000)))
      throw new Error(`sink check: message still queued: ${logTail(pf)}`)
    return await sinkHeaders(pf, pattern)
  } finally {
    await stopPostfix(pf)
  }
}

async function sinkHeaders(pf: PostfixInstance, pattern: RegExp): Promise<string[]> {
  const dir = path.join(pf.dir, 'sink')
  for (let i = 0; i < 40; i++) {
    const [first] = fs.readdirSync(dir)
    if (first) {
      const text = fs.readFileSync(path.join(dir, first), 'utf8')
      const head = text.slice(0, text.search(/\r?\n\r?\n/)).replace(/\r?\n[ \t]+/g, ' ')
      return head.split(/\r?\n/).filter((l) => pattern.test(l))
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('sink check: smtp-sink wrote no file')
}
