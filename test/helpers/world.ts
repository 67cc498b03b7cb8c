/**
 * A private DNS + HTTPS world on loopback for integration tests, in two lines:
 *
 *   const world = await startWorld({
 *     zone: { '_mta-sts.example.test': { TXT: ['v=STSv1; id=1;'] } },
 *     hosts: ['mta-sts.example.test'],                 // A 127.0.0.1, served by world.https
 *     routes: { 'mta-sts.example.test/.well-known/mta-sts.txt': { body: 'version: STSv1\n...' } },
 *   })
 *   after(() => world.close())
 *
 *   const dir = world.configIni({ policy: { dane: false } }, { 'linksec.domains.json': '{...}' })
 *   const rt = createRuntime(loadConfig(dir))            // or `linksec check --config <dir>`
 *
 * configIni writes a fresh config directory whose linksec.ini points
 * [resolver] servers at world.dns, [net] ca_file at the world's test CA,
 * [net] https_port at world.https and sets allow_private_addresses=true;
 * `extra` overrides or adds keys per section, `files` are written beside it.
 * Every directory it made is removed by close(), which also stops both
 * servers. world.dns / world.https are the live servers (see dns-server.ts
 * and https-server.ts): change zones, routes, faults and read their query
 * and request logs while the test runs. Importing this file (or
 * dns-server.ts) forbids DnsClients without servers from falling back to
 * /etc/resolv.conf in this process.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { loadConfig, type LinksecConfig } from '../../core/config'
import { startDnsServer, type TestDnsServer, type Zone } from './dns-server'
import { startHttpsServer, type Route, type TestHttpsServer } from './https-server'
import { testCa, type TestCa } from './test-ca'

export type IniValue = string | number | boolean | readonly string[]
export type IniSections = Record<string, Record<string, IniValue>>

export interface WorldOptions {
  zone?: Zone
  /** Names given an A record for 127.0.0.1 (where world.https listens). */
  hosts?: string[]
  routes?: Record<string, Route>
  /** Set the AD bit on DNS answers (a validating resolver). */
  ad?: boolean
}

export interface World {
  dns: TestDnsServer
  https: TestHttpsServer
  ca: TestCa
  /** Adds A 127.0.0.1 for each name (keeping its other records). */
  host(...names: string[]): void
  /** Writes a config directory for this world and returns its path. */
  configIni(extra?: IniSections, files?: Record<string, string | Buffer>): string
  /** loadConfig(configIni(extra, files)). */
  config(extra?: IniSections, files?: Record<string, string | Buffer>): LinksecConfig
  close(): Promise<void>
}

function iniValue(v: IniValue): string {
  return Array.isArray(v) ? v.join(',') : String(v)
}

/** Renders sections as haraka-config INI. */
export function renderIni(sections: IniSections): string {
  return Object.entries(sections)
    .map(([sec, keys]) =>
      [`[${sec}]`, ...Object.entries(keys).map(([k, v]) => `${k}=${iniValue(v)}`)].join('\n'),
    )
    .join('\n\n')
    .concat('\n')
}

function merge(base: IniSections, extra: IniSections): IniSections {
  const out: IniSections = { ...base }
  for (const [sec, keys] of Object.entries(extra)) out[sec] = { ...(out[sec] ?? {}), ...keys }
  return out
}

export async function startWorld(opts: WorldOptions = {}): Promise<World> {
  const ca = testCa()
  const dns = await startDnsServer(opts.zone ?? {}, { ad: opts.ad })
  let https: TestHttpsServer
  try {
    https = await startHttpsServer(opts.routes ?? {}, { ca })
  } catch (e) {
    await dns.close()
    throw e
  }
  const dirs: string[] = []
  const host = (...names: string[]) => {
    for (const n of names) dns.set(n, { ...(dns.zone[n.toLowerCase()] ?? {}), A: [https.host] })
    // Certificates are made ahead so the first fetch is not slowed by openssl.
    https.prepare(names).catch(() => {})
  }
  host(...(opts.hosts ?? []))
  await https.prepare(opts.hosts ?? [])

  const configIni = (extra: IniSections = {}, files: Record<string, string | Buffer> = {}) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-world-'))
    dirs.push(dir)
    const base: IniSections = {
      resolver: { servers: [dns.address], timeout_ms: 2000 },
      net: { ca_file: ca.caFile, https_port: https.port, allow_private_addresses: true, timeout_ms: 10000 },
    }
    fs.writeFileSync(path.join(dir, 'linksec.ini'), renderIni(merge(base, extra)))
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
      fs.writeFileSync(path.join(dir, name), content)
    }
    return dir
  }

  return {
    dns,
    https,
    ca,
    host,
    configIni,
    config: (extra, files) => loadConfig(configIni(extra, files)),
    async close() {
      await Promise.allSettled([https.close(), dns.close()])
      for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
    },
  }
}
