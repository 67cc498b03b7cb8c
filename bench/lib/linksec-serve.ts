/**
 * `linksec serve` as a separate process, on free loopback ports, with a
 * private configuration directory: its DNS resolver points at an in-process
 * test DNS server (every name NXDOMAIN unless a zone entry says otherwise),
 * so nothing leaves the machine, and the sender's public key sits in the
 * local key store, so keys come from the cache after the first message.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { startDnsServer, type TestDnsServer, type Zone } from '../../test/helpers/dns-server'
import { freePort, waitForPort } from '../../test/helpers/ports'
import type { RunningMilter } from './milters'

/** dist/bench/lib -> dist/bin/linksec.js */
const CLI = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')
const SERVE = path.resolve(__dirname, '..', '..', 'bin', 'commands', 'serve.js')

export type IniSections = Record<string, Record<string, string | number | boolean>>

export interface LinksecOptions {
  /** Scratch directory; the config directory is created inside it. */
  dir: string
  /** Extra or overriding ini keys, e.g. { keys: { cache_max: 1000 } }. */
  ini?: IniSections
  /** Armored public keys to put into the local key store, by address. */
  keys?: Record<string, string>
  zone?: Zone
  /** Node options for the serve process (e.g. heap sizes), before the script. */
  nodeArgs?: readonly string[]
  /** Milter on a unix socket (DIR/milter.sock) instead of a loopback TCP port. */
  unixSocket?: boolean
}

export interface RunningLinksec extends RunningMilter {
  configDir: string
  dns: TestDnsServer
  httpPort: number
  milterPort: number
  logFile: string
}

/** Why linksec cannot run here yet (its `serve` command is not built), or undefined. */
export function linksecUnavailable(): string | undefined {
  return fs.existsSync(SERVE)
    ? undefined
    : `linksec serve is not built (no ${path.relative(process.cwd(), SERVE)})`
}

export function formatIni(sections: IniSections): string {
  return Object.entries(sections)
    .map(
      ([name, keys]) =>
        `[${name}]\n${Object.entries(keys)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n')}\n`,
    )
    .join('\n')
}

function mergeIni(base: IniSections, extra: IniSections = {}): IniSections {
  const out: IniSections = { ...base }
  for (const [name, keys] of Object.entries(extra)) out[name] = { ...(out[name] ?? {}), ...keys }
  return out
}

/** dist/bench/lib -> examples/systemd/linksec.service in the source tree. */
const SYSTEMD_UNIT = path.resolve(__dirname, '..', '..', '..', 'examples', 'systemd', 'linksec.service')

/**
 * The Node options `linksec serve` runs with as shipped: LINKSEC_BENCH_NODE_OPTIONS
 * when set (to compare settings), else the NODE_OPTIONS the systemd unit sets
 * (Environment=NODE_OPTIONS=...), else none (Node's defaults).
 */
export function shippedNodeOptions(unitFile = SYSTEMD_UNIT): { args: string[]; from: string } {
  const override = process.env.LINKSEC_BENCH_NODE_OPTIONS
  if (override !== undefined)
    return { args: override.split(/\s+/).filter(Boolean), from: 'LINKSEC_BENCH_NODE_OPTIONS' }
  let unit = ''
  try {
    unit = fs.readFileSync(unitFile, 'utf8')
  } catch {
    return { args: [], from: 'Node defaults (no systemd unit found)' }
  }
  const m = /^\s*Environment=["']?NODE_OPTIONS=([^"'\n]*)/m.exec(unit)
  return m
    ? { args: m[1]!.split(/\s+/).filter(Boolean), from: 'NODE_OPTIONS of examples/systemd/linksec.service' }
    : { args: [], from: 'Node defaults (the systemd unit sets no NODE_OPTIONS)' }
}

/** Writes the local key store: one armored file per address (keys/<address>.asc). */
export function writeKeyStore(keysDir: string, keys: Record<string, string>): void {
  fs.mkdirSync(keysDir, { recursive: true })
  for (const [address, armored] of Object.entries(keys))
    fs.writeFileSync(path.join(keysDir, `${address}.asc`), armored)
}

async function baseIni(
  dns: TestDnsServer,
): Promise<{ ini: IniSections; milterPort: number; httpPort: number }> {
  const [milterPort, socketmapPort, httpPort] = [await freePort(), await freePort(), await freePort()]
  const ini: IniSections = {
    main: { authserv_id: 'mta.example.test', domain: 'example.test' },
    keys: { dir: 'keys', methods: 'local' },
    resolver: { servers: dns.address, timeout_ms: 1000 },
    milter: { listen: `inet:127.0.0.1:${milterPort}` },
    socketmap: { listen: `inet:127.0.0.1:${socketmapPort}` },
    http: { listen: `127.0.0.1:${httpPort}` },
  }
  return { ini, milterPort, httpPort }
}

export async function startLinksec(o: LinksecOptions): Promise<RunningLinksec> {
  const why = linksecUnavailable()
  if (why) throw new Error(why)
  const dns = await startDnsServer(o.zone ?? {})
  try {
    const configDir = path.join(o.dir, 'linksec-config')
    fs.mkdirSync(configDir, { recursive: true })
    const { ini, milterPort, httpPort } = await baseIni(dns)
    const socketPath = path.join(o.dir, 'milter.sock')
    if (o.unixSocket) ini.milter = { listen: `unix:${socketPath}` }
    fs.writeFileSync(path.join(configDir, 'linksec.ini'), formatIni(mergeIni(ini, o.ini)))
    writeKeyStore(path.join(configDir, 'keys'), o.keys ?? {})
    const logFile = path.join(o.dir, 'linksec.log')
    const child = spawnServe(configDir, logFile, o.nodeArgs ?? [])
    await waitReady(child, o.unixSocket ? socketPath : milterPort, logFile)
    const stop = () => stopChild(child).then(() => dns.close())
    return {
      socket: o.unixSocket ? `unix:${socketPath}` : `inet:127.0.0.1:${milterPort}`,
      pid: child.pid as number,
      stop,
      configDir,
      dns,
      httpPort,
      milterPort,
      logFile,
    }
  } catch (err) {
    await dns.close()
    throw err
  }
}

function spawnServe(configDir: string, logFile: string, nodeArgs: readonly string[]): ChildProcess {
  const out = fs.openSync(logFile, 'a')
  try {
    return spawn(process.execPath, [...nodeArgs, CLI, 'serve', '--config', configDir], {
      stdio: ['ignore', out, out],
    })
  } finally {
    fs.closeSync(out)
  }
}

/** Until the milter listens: a TCP port accepts, or the unix socket file exists. */
async function waitReady(child: ChildProcess, where: number | string, logFile: string): Promise<void> {
  const exited = new Promise<never>((_resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`linksec serve exited (${code}): ${tail(logFile)}`)))
  })
  const ready =
    typeof where === 'number' ? waitForPort(where, '127.0.0.1', 15_000) : waitForFile(where, 15_000)
  try {
    await Promise.race([ready, exited])
  } catch (err) {
    await stopChild(child)
    throw err
  }
}

async function waitForFile(file: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!fs.existsSync(file)) {
    if (Date.now() > end) throw new Error(`no socket at ${file} after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ')
  } catch {
    return '(no log)'
  }
}

/** SIGTERM, then SIGKILL after 15 s (shutdown_grace_ms defaults to 10 s). */
export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.once('exit', () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill('SIGTERM')
  })
}
