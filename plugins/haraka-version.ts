/**
 * Which Haraka runs this plugin, and whether the outbound duty was tested on
 * it. The outbound duty reaches into Haraka internals that are no public
 * API: per-instance overrides of HMailItem's get_force_tls,
 * try_deliver_host_on_socket and temp_fail (plugins/outbound/attempt.ts) and
 * a probe on the outbound client socket's write, line and upgrade
 * (plugins/outbound/session.ts). So it runs only on the Haraka versions in
 * package.json's `peerDependencies` range, the ones its tests ran against
 * (plugins/headers.ts, which edits haraka-email-message's Header in place
 * for every message, is covered by the same range but not switched off).
 * On any other Haraka, or one whose version cannot be read, register()
 * (plugins/linksec.ts) logs an ERROR naming both and registers every other
 * duty without it.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as semver from 'semver'

/** package.json's peerDependencies.Haraka: the versions the outbound duty was tested with. */
export function testedHarakaRange(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    peerDependencies?: Record<string, string>
  }
  const range = pkg.peerDependencies?.Haraka
  if (!range) throw new Error('package.json has no peerDependencies.Haraka range')
  return range
}

/**
 * The version of the Haraka process this plugin was loaded into: haraka.js
 * (Haraka's entry module, which every `haraka -c DIR` requires) exports it.
 * undefined when no such module is loaded (unit tests with haraka-test-fixtures).
 */
export function runningHarakaVersion(cache: NodeJS.Dict<NodeJS.Module> = require.cache): string | undefined {
  for (const [file, mod] of Object.entries(cache)) {
    if (path.basename(file) !== 'haraka.js' || !mod) continue
    const version = (mod.exports as { version?: unknown }).version
    if (typeof version === 'string' && version) return version
  }
  return undefined
}

export type OutboundSupport = { ok: true } | { ok: false; reason: string }

/** Whether the outbound duty may run on Haraka `version` (e.g. "3.3.4", or "3.3.4/abc123" from a git checkout). */
export function outboundSupport(version: string | undefined, range = testedHarakaRange()): OutboundSupport {
  const plain = version === undefined ? null : semver.coerce(version)
  if (plain && semver.satisfies(plain, range)) return { ok: true }
  const running = version === undefined ? 'a Haraka whose version linksec cannot read' : `Haraka ${version}`
  return {
    ok: false,
    reason:
      `linksec's outbound duty (no downgrade for tagged mail) is not enabled: it patches Haraka internals and was ` +
      `tested with Haraka ${range} only, and this is ${running}. Inbound checks, signatures and declarations still run; ` +
      `install a Haraka in that range to enforce outbound.`,
  }
}
