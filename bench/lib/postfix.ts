/**
 * A private Postfix on 127.0.0.1 relaying to smtp-sink (postfix-up.sh), plus
 * the two facts a throughput run needs: is the queue empty again, and how
 * many `status=sent` lines has the log gained.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { freePort } from '../../test/helpers/ports'
import { runScript, startPeer } from './peers'

export interface PostfixInstance {
  dir: string
  conf: string
  port: number
  sinkPort: number
  log: string
}

export interface PostfixOptions {
  /** smtpd_milters value, e.g. inet:127.0.0.1:8891; none = no milter. */
  milter?: string
  extraMainCf?: string[]
  /** smtp-sink keeps every message under DIR/sink/ (slower; for checks, not for timing). */
  sinkDump?: boolean
}

export async function startPostfix(o: PostfixOptions = {}): Promise<PostfixInstance> {
  const port = await freePort()
  const sinkPort = await freePort()
  const env: Record<string, string> = { PORT: String(port), SINK_PORT: String(sinkPort), TLS: '0' }
  if (o.milter) env.MILTER = o.milter
  if (o.sinkDump) env.SINK_DUMP = '1'
  if (o.extraMainCf?.length) env.EXTRA_MAIN_CF = o.extraMainCf.join('\n')
  const vars = await startPeer('postfix-up.sh', env)
  const dir = vars.PF_DIR
  if (!dir) throw new Error('postfix-up.sh printed no PF_DIR')
  return {
    dir,
    conf: vars.PF_CONF ?? path.join(dir, 'etc'),
    port,
    sinkPort,
    log: path.join(dir, 'log', 'maillog'),
  }
}

/** postfix-down.sh: stops master and smtp-sink and removes the directory. Never throws. */
export async function stopPostfix(pf: PostfixInstance | undefined): Promise<void> {
  if (!pf) return
  await runScript('postfix-down.sh', {}, [pf.dir], 30_000).catch(() => undefined)
}

const QUEUES = ['incoming', 'active', 'deferred', 'maildrop', 'hold']

/** Messages still in the queue (files below the queue directories). */
export function queuedCount(pf: PostfixInstance): number {
  let n = 0
  for (const q of QUEUES) n += countFiles(path.join(pf.dir, 'spool', q))
  return n
}

function countFiles(dir: string): number {
  let entries: fs.Dirent[]
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  let n = 0
  for (const e of entries) n += e.isDirectory() ? countFiles(path.join(dir, e.name)) : 1
  return n
}

/** Lines of the maillog matching `pattern` (0 when there is no log yet). */
export function countLog(pf: PostfixInstance, pattern: RegExp): number {
  let text: string
  try {
    text = fs.readFileSync(pf.log, 'utf8')
  } catch {
    return 0
  }
  const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g')
  return text.match(global)?.length ?? 0
}

export interface LogCounts {
  sent: number
  rejected: number
  deferred: number
}

export function logCounts(pf: PostfixInstance): LogCounts {
  return {
    sent: countLog(pf, /status=sent/),
    rejected: countLog(pf, /milter-reject|NOQUEUE: reject/),
    deferred: countLog(pf, /status=deferred/),
  }
}

/** Waits (polling every 20 ms) until the queue is empty; false if `timeoutMs` passed first. */
export async function waitQueueEmpty(pf: PostfixInstance, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (queuedCount(pf) > 0) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 20))
  }
  return true
}

/** The last lines of the maillog, for error messages. */
export function logTail(pf: PostfixInstance, lines = 5): string {
  try {
    return fs.readFileSync(pf.log, 'utf8').trim().split('\n').slice(-lines).join(' | ')
  } catch {
    return '(no maillog)'
  }
}
