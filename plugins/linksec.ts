/**
 * The linksec plugin for Haraka 3.x. Operators `npm install linksec` in their
 * Haraka directory and add one line, `linksec`, to config/plugins. Haraka
 * require()s this package (package.json "main") and copies these exports onto
 * its Plugin object, then calls register() synchronously.
 *
 * The plugin is a list of duties (duty.ts), each a set of raw Haraka hooks
 * registered as `linksec_<duty>_<hook>` methods. The end of message is not a
 * duty's: data_post runs core/message's one pipeline (message.ts), the same
 * steps the milter runs.
 * Everything runs inside guarded(): any failure answers 451 4.3.0.
 */
import { declaredLevel, declareDuty, setEnforcementLoaded } from './declare'
import type { Duty } from './duty'
import { guarded } from './guard'
import { outboundSupport, runningHarakaVersion } from './haraka-version'
import type { HarakaPlugin, HookMethod } from './haraka'
import { outboundDuty } from './outbound'
import { RuntimeHolder } from './config'
import { dataHandler, dataPostHandler, queueHandler } from './message'
import { MESSAGE_STEPS, type MessageStep } from '../core/message'
import { registerMetricsEndpoint } from './metrics'
import { ensureHarakaCertificate } from './tls'
import { startDailyReports } from '../core/tlsrpt'

/** Every duty of the plugin. */
export const DUTIES: readonly Duty[] = [declareDuty, outboundDuty]

/** Plugin-wide hooks: the data_post pipeline, and header additions just before queueing. */
function coreHooks(steps: readonly MessageStep[]): Duty {
  return {
    name: 'linksec',
    hooks: {
      // First at DATA, so the body lines are kept from the first one (plugins/message.ts captureBody).
      data: { handler: dataHandler, priority: -100 },
      data_post: { handler: dataPostHandler(steps) },
      // First in line (-100), before any queue plugin reads the message stream.
      queue: { handler: queueHandler, priority: -100 },
      queue_outbound: { handler: queueHandler, priority: -100 },
    },
  }
}

/** Registers every hook of every duty on `plugin`, each wrapped in guarded(). */
export function registerDuties(
  plugin: HarakaPlugin,
  holder: RuntimeHolder,
  duties: readonly Duty[],
  steps: readonly MessageStep[] = MESSAGE_STEPS,
): string[] {
  const methods: string[] = []
  for (const duty of [...duties, coreHooks(steps)]) {
    for (const [hook, spec] of Object.entries(duty.hooks ?? {})) {
      const method = `linksec_${duty.name}_${hook}`
      const stage = duty.name === 'linksec' ? hook : `${duty.name}_${hook}`
      plugin[method] = guarded(stage, spec.handler, () => holder.current()) satisfies HookMethod
      plugin.register_hook(hook, method, spec.priority ?? 0)
      methods.push(method)
    }
  }
  return methods
}

/**
 * The duties this Haraka may run: all of them, less the outbound duty on a
 * Haraka whose internals it was not tested against (plugins/haraka-version.ts),
 * which is said at ERROR with the running version and the tested range.
 */
export function dutiesFor(
  holder: RuntimeHolder,
  duties: readonly Duty[],
  version: string | undefined = runningHarakaVersion(),
): readonly Duty[] {
  const support = outboundSupport(version)
  if (support.ok) return duties
  holder.current().log.error(support.reason, { haraka_version: version ?? 'unknown' })
  return duties.filter((d) => d !== outboundDuty)
}

/** Haraka calls this once per process, synchronously, with `this` = the Plugin. */
export function register(this: HarakaPlugin): void {
  // A ConfigError here stops Haraka's start-up with the key and the fix.
  const holder = new RuntimeHolder(this)
  this[HOLDER] = holder
  ensureHarakaCertificate(this, holder.current()) // before Haraka's tls plugin reads its files
  const duties = dutiesFor(holder, DUTIES)
  setEnforcementLoaded(duties.some((d) => d.performs?.includes('noDowngrade')))
  registerDuties(this, holder, duties)
  registerMetricsEndpoint(this, () => holder.current()) // /metrics, /healthz, WKD (plugins/metrics.ts)
  // Outbound TLS outcomes are counted here; without Redis only this process can report them (RFC 8460).
  if (process.env.HARAKA) this[STOP_REPORTS] = startDailyReports(() => holder.current())
  holder.current().log.info('linksec plugin registered', {
    duties: duties.map((d) => d.name).join(','),
    level: declaredLevel(holder.current().config),
  })
}

const HOLDER = 'linksec_holder'
const STOP_REPORTS = 'linksec_stop_reports'

/**
 * Haraka calls this at shutdown and before it reloads its plugins: stop the
 * daily report timer (a reloaded plugin starts its own; the old one would run
 * on a closed engine) and close the engine (Redis included).
 */
export function shutdown(this: HarakaPlugin): void {
  const stop = this[STOP_REPORTS]
  if (typeof stop === 'function') (stop as () => void)()
  delete this[STOP_REPORTS]
  const holder = this[HOLDER]
  if (holder instanceof RuntimeHolder) void holder.close()
}
