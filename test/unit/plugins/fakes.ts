/**
 * Test doubles for the Haraka adapter: a Plugin that records registrations
 * and log lines, and real Connection/Transaction objects from
 * haraka-test-fixtures (so header handling runs on haraka-email-message).
 */
import { createMetrics } from '../../../core/metrics'
import { createRuntime, type Runtime } from '../../../core/runtime'
import { parseConfig } from '../../../core/config'
import type { HarakaConnection, HarakaPlugin, HarakaTransaction } from '../../../plugins/haraka'

interface Fixtures {
  connection: {
    createConnection(): HarakaConnection & {
      init_transaction(cb?: () => void): void
      setTLS(o: object): void
    }
  }
}
const fixtures = require('haraka-test-fixtures') as Fixtures

export type RawIni = Record<string, Record<string, unknown>>

export interface FakePlugin extends HarakaPlugin {
  hooks: { hook: string; method: string; priority: number }[]
  lines: string[]
  /** What config.get returns next; set to change the "file". */
  raw: RawIni
  /** The reload callback haraka-config was given. */
  onChange?: () => void
}

export function fakePlugin(raw: RawIni = {}): FakePlugin {
  const p = {
    name: 'linksec',
    hooks: [] as FakePlugin['hooks'],
    lines: [] as string[],
    raw,
    config: {
      get: (_name: string, _opts: object, cb?: () => void) => {
        p.onChange = cb
        return p.raw
      },
    },
    register_hook(hook: string, method: string, priority = 0) {
      p.hooks.push({ hook, method, priority })
    },
  } as unknown as FakePlugin
  for (const level of ['logdebug', 'loginfo', 'logwarn', 'logerror', 'logcrit'])
    p[level] = (...args: unknown[]) => p.lines.push(`${level} ${args.map(String).join(' ')}`)
  return p
}

export function runtimeWith(raw: RawIni = {}): Runtime {
  const cfg = parseConfig({ ...raw, main: { authserv_id: 'mx.test', ...(raw.main ?? {}) } }, '/tmp')
  return createRuntime(cfg, { metrics: createMetrics({ processMetrics: false }), log: quietLog })
}

const quietLog = { debug() {}, info() {}, warn() {}, error() {} }

export type FixtureConnection = HarakaConnection & { transaction: HarakaTransaction }

/** A connection with a transaction whose headers are `headerLines` ("Name: value"). */
export function connectionWith(opts: { tls?: boolean; headerLines?: string[] } = {}): FixtureConnection {
  const conn = fixtures.connection.createConnection()
  if (opts.tls) {
    conn.setTLS({ cipher: { name: 'TLS_AES_256_GCM_SHA384', version: 'TLSv1.3' }, verified: false })
  }
  conn.init_transaction()
  const txn = conn.transaction!
  const header = txn.header as unknown as { parse(lines: string[]): void }
  header.parse((opts.headerLines ?? []).map((l) => l + '\n'))
  return conn as FixtureConnection
}

/** Calls a hook-shaped function and resolves with what it passed to next(). */
export function callNext(
  fn: (next: (code?: number, msg?: unknown) => void) => unknown,
): Promise<{ code?: number; msg?: unknown }> {
  return new Promise((resolve) => {
    fn((code, msg) => resolve({ code, msg }))
  })
}
