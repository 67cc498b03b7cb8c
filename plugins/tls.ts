/**
 * STARTTLS for every Haraka running linksec (seed 004). At register(), when
 * Haraka has no certificate configured and `[tls] self_signed` is on, the
 * plugin makes a self-signed one where Haraka's tls.ini looks for it
 * (config/tls_cert.pem, tls_key.pem by default) and a dhparams.pem (Haraka
 * would otherwise run `openssl dhparam 2048` for minutes). One linksec made
 * earlier is renewed when due; an operator's is never touched
 * (core/tls/store.ts). If Haraka's tls plugin was registered before us
 * (listed first in config/plugins) it has already found no certificate, so
 * its loader (tls_socket.load_tls_ini) is run again.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { ffdhe2048Sync } from '../core/tls/certificate'
import { certificateHostname, ensureCertificateSync, type CertificatePaths } from '../core/tls/store'
import { recordOwnCertificate } from '../core/tls/metrics'
import type { Runtime } from '../core/runtime'
import { describeError } from '../core/errors'
import { harakaConfigDir } from './config'
import type { HarakaPlugin } from './haraka'

interface TlsIni {
  main?: { key?: unknown; cert?: unknown; dhparam?: unknown }
}

function firstName(v: unknown, fallback: string): string {
  const s: unknown = Array.isArray(v) ? v[0] : v
  return typeof s === 'string' && s.trim() ? s.trim() : fallback
}

/** Where Haraka's tls.ini [main] says its key and certificate are (Haraka's defaults otherwise). */
function harakaCertificatePaths(
  plugin: HarakaPlugin,
  dir = harakaConfigDir(),
): CertificatePaths & { dhparam: string } {
  const ini = (plugin.config.get('tls.ini', {}) ?? {}) as TlsIni
  const main = ini.main ?? {}
  return {
    cert: path.resolve(dir, firstName(main.cert, 'tls_cert.pem')),
    key: path.resolve(dir, firstName(main.key, 'tls_key.pem')),
    dhparam: path.resolve(dir, firstName(main.dhparam, 'dhparams.pem')),
  }
}

/** config/tls/ holds per-name certificates (Haraka's get_certs_dir): the operator has configured some. */
function hasCertsDir(dir: string): boolean {
  try {
    return fs.readdirSync(path.join(dir, 'tls')).length > 0
  } catch {
    return false
  }
}

function harakaHostname(dir: string): string | undefined {
  try {
    return fs.readFileSync(path.join(dir, 'me'), 'utf8').split('\n')[0]!.trim() || undefined
  } catch {
    return undefined
  }
}

function reloadHarakaTls(plugin: HarakaPlugin): void {
  const req = plugin.haraka_require as ((name: string) => unknown) | undefined
  const tlsSocket = req?.call(plugin, 'tls_socket') as
    { load_tls_ini?: () => void; tls_valid?: boolean } | undefined
  if (tlsSocket?.load_tls_ini && !tlsSocket.tls_valid) tlsSocket.load_tls_ini()
}

/** Makes or renews the plugin's own certificate; never throws (Haraka without TLS still takes mail). */
export function ensureHarakaCertificate(
  plugin: HarakaPlugin,
  rt: Runtime,
  dir: string | undefined = process.env.HARAKA && harakaConfigDir(),
): void {
  // Outside a Haraka directory (unit tests, tools) there is no Haraka config/ to write into.
  if (!dir) return
  const cfg = rt.config.tls
  try {
    const paths = harakaCertificatePaths(plugin, dir)
    const missing = !fs.existsSync(paths.cert) && !fs.existsSync(paths.key)
    if (missing && (!cfg.self_signed || hasCertsDir(dir))) return
    if (!missing && !cfg.renew) return
    const host = cfg.hostname || harakaHostname(dir) || certificateHostname(rt.config)
    const r = ensureCertificateSync(paths, host, rt.now())
    if (r.certificate) recordOwnCertificate(rt.metrics, r.certificate)
    if (r.outcome !== 'made' && r.outcome !== 'renewed') return
    if (!fs.existsSync(paths.dhparam)) fs.writeFileSync(paths.dhparam, ffdhe2048Sync())
    rt.log.info(`linksec ${r.outcome} a self-signed TLS certificate`, {
      host,
      file: paths.cert,
      not_after: r.certificate!.notAfter.toISOString(),
    })
    reloadHarakaTls(plugin)
  } catch (e) {
    rt.log.error('could not make a TLS certificate; STARTTLS and the linksec declaration stay off', {
      error: describeError(e),
    })
  }
}
