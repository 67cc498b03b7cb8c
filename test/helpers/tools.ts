/**
 * Real-peer tests need system tools (postfix, swaks, gpg, sq, ...). In CI a
 * missing tool is a failure; locally the test is skipped with a message
 * saying what to install.
 */
import { spawnSync } from 'node:child_process'
import type { TestContext } from 'node:test'

const PATHS = ['/usr/sbin', '/usr/local/sbin', '/sbin']

export function which(tool: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${process.env.PATH}:${PATHS.join(':')}` },
  })
  const p = r.stdout.trim()
  return r.status === 0 && p ? p : undefined
}

/**
 * Returns true when every tool is present. Otherwise fails the test in CI
 * (CI=true) or skips it locally, naming the Debian package to install.
 */
export function needTools(t: TestContext, tools: Record<string, string>): boolean {
  const missing = Object.entries(tools).filter(([tool]) => !which(tool))
  if (missing.length === 0) return true
  const msg = `missing ${missing.map(([t, pkg]) => `${t} (apt-get install ${pkg})`).join(', ')}`
  if (process.env.CI) throw new Error(`${msg}; .ci/run must install it`)
  t.skip(msg)
  return false
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

/**
 * Returns true when running as root (starting Postfix, network and mount
 * namespaces, ports below 1024). Otherwise fails the test in CI (CI=true:
 * .ci/run runs as root, so a test that skips there tests nothing) or skips
 * it locally, saying why.
 */
export function needRoot(t: TestContext, why: string): boolean {
  if (isRoot()) return true
  if (process.env.CI) throw new Error(`${why}; CI must run the tests as root`)
  t.skip(why)
  return false
}
