/**
 * Configuration and Runtime for the Haraka adapter. The plugin reads the same
 * linksec.ini and schema as the milter, through Haraka's own config loader:
 * haraka-config merges the package's config/linksec.ini (defaults) with
 * Haraka's config/linksec.ini (the operator's overrides) and calls us back when
 * either file changes. A bad reload keeps the running configuration and logs
 * why; a bad configuration at start-up stops Haraka with the error (ConfigError
 * names the key and the fix).
 */
import * as path from 'node:path'
import { HARAKA_CONFIG_OPTIONS, parseConfig, PACKAGE_CONFIG_DIR, type LinksecConfig } from '../core/config'
import { describeError } from '../core/errors'
import type { LogFields, Logger } from '../core/log'
import { createMetrics, type Metrics } from '../core/metrics'
import { Engine } from '../core/engine'
import type { Runtime } from '../core/runtime'
import type { HarakaPlugin } from './haraka'

const CONFIG_FILE = 'linksec.ini'

let processMetrics: Metrics | undefined

/** The one metrics registry of this Haraka process (each cluster worker has its own). */
export function harakaMetrics(): Metrics {
  processMetrics ??= createMetrics()
  return processMetrics
}

/** Relative paths in the config (keys.dir, policy.domains_file) resolve against Haraka's config/. */
export function harakaConfigDir(): string {
  return process.env.HARAKA ? path.join(process.env.HARAKA, 'config') : PACKAGE_CONFIG_DIR
}

const BLANK = /\s/

/** ` key=value …` for a log line; strings with blanks (and non-strings) JSON-quoted. Runs per line. */
export function formatFields(fields?: LogFields): string {
  let out = ''
  for (const k in fields) {
    const v = fields[k]
    if (v === undefined) continue
    out += ` ${k}=${typeof v === 'string' && !BLANK.test(v) ? v : JSON.stringify(v)}`
  }
  return out
}

/** A core Logger that writes through Haraka's logger (its levels, its log plugins). */
export function harakaLogger(
  plugin: Pick<HarakaPlugin, 'logdebug' | 'loginfo' | 'logwarn' | 'logerror'>,
): Logger {
  return {
    debug: (m, f) => plugin.logdebug(m + formatFields(f)),
    info: (m, f) => plugin.loginfo(m + formatFields(f)),
    warn: (m, f) => plugin.logwarn(m + formatFields(f)),
    error: (m, f) => plugin.logerror(m + formatFields(f)),
  }
}

/**
 * Holds the process's Engine (core/engine.ts) and its current Runtime;
 * `reload()` reconfigures the engine only when the new file is valid, so
 * caches, learned declarations and clients whose config sections did not
 * change survive it, and what a changed section replaces (the Redis client
 * too) is closed. Hooks call `current()` on every use, so a reload takes
 * effect on the next SMTP command. `close()` at Haraka's shutdown.
 */
export class RuntimeHolder {
  readonly engine: Engine

  constructor(
    private readonly plugin: HarakaPlugin,
    private readonly dir: string = harakaConfigDir(),
  ) {
    this.engine = new Engine(this.read(), { log: harakaLogger(this.plugin), metrics: harakaMetrics() })
  }

  current(): Runtime {
    return this.engine.runtime
  }

  /** Re-reads linksec.ini; on error keeps the running configuration. */
  reload(): boolean {
    const rt = this.current()
    try {
      void this.engine.reconfigure(this.read(), harakaLogger(this.plugin))
      rt.log.info('linksec configuration reloaded', { dir: this.dir })
      return true
    } catch (e) {
      rt.log.error('linksec configuration NOT reloaded; keeping the running one', {
        error: describeError(e),
      })
      return false
    }
  }

  close(): Promise<void> {
    return this.engine.close()
  }

  private read(): LinksecConfig {
    const raw = this.plugin.config.get(CONFIG_FILE, HARAKA_CONFIG_OPTIONS, () => this.reload())
    return parseConfig((raw ?? {}) as Record<string, unknown>, this.dir)
  }
}
