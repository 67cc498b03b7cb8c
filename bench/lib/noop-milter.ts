/**
 * linksec's milter stack (server, session, codec, app) with either a no-op
 * policy that adds one header, or linksec's default policies, in a child
 * process of its own (so a load generator does not share its event loop and
 * its CPU can be read from /proc). The no-op role is the floor: what being a
 * Node milter costs before any check runs.
 *
 *   startFrameworkMilter('noop', 'inet:127.0.0.1:0')
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { defaultConfig } from '../../core/config'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { CONTINUE } from '../../core/verdict'
import { messageStep } from '../../core/message'
import { createMilterApp } from '../../milter/app'
import { startMilterService } from '../../milter/server'
import type { RunningMilter } from './milters'

export type FrameworkRole = 'noop' | 'default'

const ROLE_ENV = 'LINKSEC_BENCH_MILTER_ROLE'
const LISTEN_ENV = 'LINKSEC_BENCH_MILTER_LISTEN'

/** Starts the child; resolves once it listens, with the address it listens on. */
export async function startFrameworkMilter(role: FrameworkRole, listen: string): Promise<RunningMilter> {
  const child = spawn(process.execPath, [__filename], {
    env: { ...process.env, [ROLE_ENV]: role, [LISTEN_ENV]: listen },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (b: Buffer) => resolve(b.toString().trim()))
    child.once('exit', (code) => reject(new Error(`bench milter exited with ${code}`)))
  })
  return { socket: address, pid: child.pid!, stop: () => stopChild(child) }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))])
  if (child.exitCode === null) child.kill('SIGKILL')
}

/** The child: listen, print the address on one line, close on SIGTERM. */
async function serve(role: FrameworkRole, listen: string): Promise<void> {
  const rt = createRuntime(defaultConfig(), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
  })
  const noop = messageStep('noop', async () => ({
    verdict: CONTINUE,
    headers: [{ op: 'append', name: 'X-Test-Milter', value: 'ok' }],
  }))
  const transport = listen.startsWith('unix:') ? 'unix' : 'inet'
  const handler =
    role === 'noop' ? createMilterApp(rt, { steps: [noop], transport }) : createMilterApp(rt, { transport })
  const svc = await startMilterService(rt, { listen, handler })
  process.stdout.write(`${svc.address}\n`)
  process.once('SIGTERM', () => void svc.close(1000).then(() => process.exit(0)))
}

if (require.main === module) {
  const role = process.env[ROLE_ENV] as FrameworkRole | undefined
  const listen = process.env[LISTEN_ENV]
  if (!role || !listen) {
    process.stderr.write(`${ROLE_ENV} and ${LISTEN_ENV} must be set\n`)
    process.exitCode = 2
  } else void serve(role, listen)
}
