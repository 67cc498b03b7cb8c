/**
 * A real redis-server on loopback through /work/shared/peers/redis-up.sh
 * (its own directory and port), and `redis-cli` against it.
 *
 *   const redis = await startRedis()
 *   // [redis] url = redis.url
 *   const clients = redis.clientList()   // CLIENT LIST, the caller's own connection left out
 *   await redis.stop()
 */
import { spawn, spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { freePort } from './ports'

const PEERS = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'peers')
const PATH = `${process.env.PATH}:/usr/sbin:/usr/local/sbin`

export interface RedisClientInfo {
  id: string
  addr: string
  cmd: string
}

export interface TestRedis {
  url: string
  port: number
  /** CLIENT LIST without redis-cli's own connection. */
  clientList(): RedisClientInfo[]
  stop(): Promise<void>
}

/** Runs a peers/ script; resolves with its exit code and output (bounded: 30 s). */
export function peerScript(
  script: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(PEERS, script), ...args], {
      env: { ...process.env, PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
  })
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort()
  const r = await peerScript('redis-up.sh', { PORT: String(port) })
  if (r.code !== 0) throw new Error(`redis-up.sh failed: ${r.err}`)
  const dir = /export REDIS_DIR='([^']+)'/.exec(r.out)![1]!
  const url = /export REDIS_URL='([^']+)'/.exec(r.out)![1]!
  return {
    url,
    port,
    clientList: () => {
      const out = spawnSync('redis-cli', ['-p', String(port), 'CLIENT', 'LIST'], { encoding: 'utf8' })
      if (out.status !== 0) throw new Error(`redis-cli: ${out.stderr}`)
      return out.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => Object.fromEntries(line.split(' ').map((kv) => kv.split('=', 2) as [string, string])))
        .map((f) => ({ id: f.id ?? '', addr: f.addr ?? '', cmd: f.cmd ?? '' }))
        .filter((c) => c.cmd !== 'client|list' && c.cmd !== 'client')
    },
    stop: async () => {
      await peerScript('peer-down.sh', {}, [dir])
    },
  }
}
