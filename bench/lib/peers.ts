/**
 * Starts and stops the shared, tested peer scripts (/work/shared/peers in
 * development, <repo>/../shared/peers in CI): private Postfix + smtp-sink,
 * OpenDKIM. Each script prints `export NAME='value'` lines; we parse them.
 */
import { spawn } from 'node:child_process'
import * as path from 'node:path'

/** dist/bench/lib -> repository root -> ../shared/peers */
export const PEERS_DIR = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'peers')

export const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/usr/local/sbin:/sbin`

export interface ScriptRun {
  code: number
  stdout: string
  stderr: string
}

/** Runs a peer script with extra environment, bounded by `timeoutMs`. */
export function runScript(
  script: string,
  env: Record<string, string>,
  args: string[] = [],
  timeoutMs = 60_000,
) {
  return runCommand('bash', [path.join(PEERS_DIR, script), ...args], env, timeoutMs)
}

export function runCommand(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
  input?: string,
): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, PATH: SBIN_PATH, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }))
    child.stdin.end(input ?? '')
  })
}

/** `export A='x'` lines -> { A: 'x' }. */
export function parseExports(stdout: string): Record<string, string> {
  const vars: Record<string, string> = {}
  for (const m of stdout.matchAll(/^export ([A-Z_][A-Z0-9_]*)='([^']*)'$/gm)) vars[m[1] ?? ''] = m[2] ?? ''
  return vars
}

/** Runs an `*-up.sh` script and returns its exports, or throws with its stderr. */
export async function startPeer(
  script: string,
  env: Record<string, string>,
): Promise<Record<string, string>> {
  const r = await runScript(script, env)
  if (r.code !== 0)
    throw new Error(`${script} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`)
  return parseExports(r.stdout)
}

/** peer-down.sh DIR: SIGTERM to DIR/pid, then removes DIR. Never throws (cleanup path). */
export async function stopPeer(dir: string | undefined): Promise<void> {
  if (!dir) return
  await runScript('peer-down.sh', {}, [dir], 30_000).catch(() => undefined)
}
