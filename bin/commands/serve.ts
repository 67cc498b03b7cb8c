/**
 * `linksec serve [--config DIR]`: loads and validates linksec.ini (a bad key
 * stops start-up with a message naming the key and the fix), then starts
 * every enabled service and prints one line per listener. SIGTERM/SIGINT
 * close them all, letting work in flight finish for [milter]
 * shutdown_grace_ms, and exit 0. An error that escapes any handler is
 * logged, counted and contained to its session (core/guard.ts), never the
 * end of the process.
 */
import * as path from 'node:path'
import type { LinksecConfig } from '../../core/config'
import { describeError } from '../../core/errors'
import { installProcessGuard } from '../../core/guard'
import { createRuntime, type Runtime } from '../../core/runtime'
import type { Service } from '../../core/service'
import { healthOf } from '../../core/http/health'
import { checkSignSetup } from '../../core/sign/step'
import { startCertificateRenewal } from '../../core/tls/renewal'
import { startDailyReports } from '../../core/tlsrpt'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

interface ServiceSpec {
  name: string
  enabled: (cfg: LinksecConfig) => boolean
  /** Module path relative to the package root (without extension) and its start function. */
  module: string
  start: string
}

/** Every service `serve` may run, in start order. Add one line per service. */
export const SERVICES: readonly ServiceSpec[] = [
  { name: 'milter', enabled: (c) => c.milter.enabled, module: 'milter/server', start: 'startMilterService' },
  {
    name: 'socketmap',
    enabled: (c) => c.socketmap.enabled,
    module: 'milter/socketmap/server',
    start: 'startSocketmapService',
  },
  { name: 'http', enabled: (c) => c.http.enabled, module: 'core/http/server', start: 'startHttpService' },
]

type StartFn = (rt: Runtime) => Promise<Service>

/** The service's start function, or undefined when its module is not part of this build yet. */
function loadStart(spec: ServiceSpec): StartFn | undefined {
  const file = path.resolve(__dirname, '..', '..', spec.module)
  try {
    require.resolve(file)
  } catch {
    return undefined
  }
  const start = (require(file) as Record<string, unknown>)[spec.start]
  if (typeof start !== 'function') throw new Error(`${spec.module} does not export ${spec.start}(rt)`)
  return start as StartFn
}

export async function startServices(rt: Runtime, out: (line: string) => void): Promise<Service[]> {
  const started: Service[] = []
  try {
    for (const spec of SERVICES) {
      if (!spec.enabled(rt.config)) continue
      const start = loadStart(spec)
      if (!start) {
        rt.log.warn('service not started: its module is not built', {
          service: spec.name,
          module: spec.module,
        })
        continue
      }
      const service = await start(rt)
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
  const rt = createRuntime(configFromArgs(args))
  installProcessGuard(rt)
  checkSignSetup(rt)
  const services = await startServices(rt, (line) => process.stdout.write(line + '\n'))
  if (services.length === 0) {
    process.stderr.write(
      'linksec: no service is enabled; set enabled=true in [milter], [socketmap] or [http]\n',
    )
    return 78
  }
  const stopTimers = [startCertificateRenewal(rt), startDailyReports(rt)] // certificate renewal, TLS reports
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
  return 0
}
