/**
 * `linksec serve [--config DIR]`: loads and validates linksec.ini (a bad key
 * stops start-up with a message naming the key and the fix), then starts
 * every enabled service and prints one line per listener. SIGTERM/SIGINT
 * close them all, letting work in flight finish for [milter]
 * shutdown_grace_ms, and exit 0. An error that escapes any handler is
 * logged, counted and contained to its session (core/guard.ts), never the
 * end of the process.
 */
import type { LinksecConfig } from '../../core/config'
import { describeError } from '../../core/errors'
import { installProcessGuard } from '../../core/guard'
import { Engine } from '../../core/engine'
import type { Runtime } from '../../core/runtime'
import type { Service } from '../../core/service'
import { healthOf } from '../../core/http/health'
import { checkSignSetup } from '../../core/sign/step'
import { startCertificateRenewal } from '../../core/tls/renewal'
import { startDailyReports } from '../../core/tlsrpt'
import { startPostfixLogReader } from '../../core/tlsrpt/postfix-log'
import { startHttpService } from '../../core/http/server'
import { startMilterService } from '../../milter/server'
import { startSocketmapService } from '../../milter/socketmap/server'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

type StartFn = (rt: Runtime) => Promise<Service>

interface ServiceSpec {
  name: string
  enabled: (cfg: LinksecConfig) => boolean
  start: StartFn
}

/** Every service `serve` may run, in start order. Add one line per service. */
const SERVICES: readonly ServiceSpec[] = [
  { name: 'milter', enabled: (c) => c.milter.enabled, start: (rt) => startMilterService(rt) },
  { name: 'socketmap', enabled: (c) => c.socketmap.enabled, start: (rt) => startSocketmapService(rt) },
  { name: 'http', enabled: (c) => c.http.enabled, start: (rt) => startHttpService(rt) },
]

async function startServices(rt: Runtime, out: (line: string) => void): Promise<Service[]> {
  const started: Service[] = []
  try {
    for (const spec of SERVICES) {
      if (!spec.enabled(rt.config)) continue
      const service = await spec.start(rt)
      started.push(service)
      healthOf(rt).add(service) // listed on /healthz
      out(`linksec: ${service.name} listening on ${service.address}`)
    }
  } catch (e) {
    await Promise.all(started.map((s) => s.close(0)))
    throw e
  }
  return started
}

export const USAGE = 'usage: linksec serve [--config DIR]\n'

export const OPTIONS = {} satisfies OptionTable

export async function run(args: ParsedArgs): Promise<number> {
  // One engine for the process: the milter, socketmap and HTTP services share its caches and clients.
  const engine = new Engine(configFromArgs(args))
  const rt = engine.runtime
  installProcessGuard(rt)
  checkSignSetup(rt)
  const services = await startServices(rt, (line) => process.stdout.write(line + '\n'))
  if (services.length === 0) {
    await engine.close()
    process.stderr.write(
      'linksec: no service is enabled; set enabled=true in [milter], [socketmap] or [http]\n',
    )
    return 78
  }
  const stopTimers = [startCertificateRenewal(rt), startDailyReports(rt)] // certificate renewal, TLS reports
  // Postfix before 3.10 reports no TLS outcomes to policy servers: read them from its log.
  if (rt.config.tlsrpt.enabled && rt.config.tlsrpt.postfix_log) {
    const reader = startPostfixLogReader(rt)
    stopTimers.push(() => reader.stop())
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  const graceMs = rt.config.milter.shutdown_grace_ms
  rt.log.info('shutting down', { signal, grace_ms: graceMs })
  for (const stop of stopTimers) stop()
  const results = await Promise.allSettled(services.map((s) => s.close(graceMs)))
  for (const [i, r] of results.entries()) {
    if (r.status === 'rejected')
      rt.log.error('service did not close cleanly', {
        service: services[i]!.name,
        error: describeError(r.reason),
      })
  }
  await engine.close()
  return 0
}
