/**
 * Certificate files on disk and the mark that says linksec made them. The mark
 * is a sidecar, `<cert file>.linksec`, holding the certificate's SHA-256
 * fingerprint: a certificate is linksec's only while the file next to it names
 * exactly that certificate, so an operator who drops a real certificate in
 * place (even over ours) is never renewed over.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { LinksecConfig } from '../config'
import {
  certificateFacts,
  makeSelfSigned,
  makeSelfSignedSync,
  RENEW_BEFORE_DAYS,
  type CertificateFacts,
  type CertificatePair,
} from './certificate'

export interface CertificatePaths {
  cert: string
  key: string
}

export interface OwnCertificate extends CertificateFacts {
  hostname: string
  paths: CertificatePaths
}

/** What ensure/renew did: made a new one, renewed ours, kept ours, or left an operator's alone. */
export type CertificateOutcome = 'made' | 'renewed' | 'kept' | 'operator'

const MARK_SUFFIX = '.linksec'
const DAY_MS = 24 * 3600 * 1000

export function markPath(certFile: string): string {
  return certFile + MARK_SUFFIX
}

/** [tls] cert_file and key_file, relative to the configuration directory. */
export function certificatePaths(cfg: LinksecConfig): CertificatePaths {
  return { cert: path.resolve(cfg.dir, cfg.tls.cert_file), key: path.resolve(cfg.dir, cfg.tls.key_file) }
}

/** The name the certificate is for: [tls] hostname, else [main] authserv_id, else this host's name. */
export function certificateHostname(cfg: LinksecConfig, fallback?: string): string {
  return cfg.tls.hostname || cfg.main.authserv_id || fallback || os.hostname()
}

function writeAtomic(file: string, data: string, mode: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, data, { mode })
  fs.chmodSync(tmp, mode) // the umask may have narrowed or (for 0600) must not widen it
  fs.renameSync(tmp, file)
}

/** Writes key (0600), certificate (0644) and the mark. */
export function writeOwnCertificate(
  paths: CertificatePaths,
  pair: CertificatePair,
  hostname: string,
): OwnCertificate {
  const facts = certificateFacts(pair.certPem)
  if (!facts) throw new Error('openssl produced no readable certificate')
  writeAtomic(paths.key, pair.keyPem, 0o600)
  writeAtomic(paths.cert, pair.certPem, 0o644)
  const mark = {
    made_by: 'linksec',
    hostname,
    fingerprint256: facts.fingerprint256,
    not_after: facts.notAfter,
  }
  writeAtomic(markPath(paths.cert), JSON.stringify(mark) + '\n', 0o644)
  return { ...facts, hostname, paths }
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

/** The certificate at `paths` if linksec made it (the mark names its fingerprint), else undefined. */
export function ownCertificate(paths: CertificatePaths): OwnCertificate | undefined {
  const pem = readIfExists(paths.cert)
  const markText = readIfExists(markPath(paths.cert))
  if (pem === undefined || markText === undefined) return undefined
  const facts = certificateFacts(pem)
  let mark: { made_by?: unknown; hostname?: unknown; fingerprint256?: unknown }
  try {
    mark = JSON.parse(markText) as typeof mark
  } catch {
    return undefined
  }
  if (!facts || mark.made_by !== 'linksec' || mark.fingerprint256 !== facts.fingerprint256) return undefined
  return { ...facts, hostname: typeof mark.hostname === 'string' ? mark.hostname : '', paths }
}

export function renewalDue(facts: Pick<CertificateFacts, 'notAfter'>, nowMs: number): boolean {
  return facts.notAfter.getTime() - nowMs <= RENEW_BEFORE_DAYS * DAY_MS
}

/** Is a usable certificate there (both files, the certificate readable and not expired)? */
export function certificateUsable(paths: CertificatePaths, nowMs: number): boolean {
  const pem = readIfExists(paths.cert)
  if (pem === undefined || !fs.existsSync(paths.key)) return false
  const facts = certificateFacts(pem)
  return (
    facts !== undefined && facts.notAfter.getTime() > nowMs && facts.notBefore.getTime() <= nowMs + DAY_MS
  )
}

function nothingThere(paths: CertificatePaths): boolean {
  return !fs.existsSync(paths.cert) && !fs.existsSync(paths.key)
}

/**
 * Makes a certificate when there is none, renews one linksec made when due,
 * and leaves anything else alone. Synchronous for Haraka's register().
 */
export function ensureCertificateSync(
  paths: CertificatePaths,
  hostname: string,
  nowMs: number,
): { outcome: CertificateOutcome; certificate?: OwnCertificate } {
  if (nothingThere(paths)) {
    return {
      outcome: 'made',
      certificate: writeOwnCertificate(paths, makeSelfSignedSync(hostname), hostname),
    }
  }
  const own = ownCertificate(paths)
  if (!own) return { outcome: 'operator' }
  if (!renewalDue(own, nowMs)) return { outcome: 'kept', certificate: own }
  const host = own.hostname || hostname
  return { outcome: 'renewed', certificate: writeOwnCertificate(paths, makeSelfSignedSync(host), host) }
}

/** serve's daily check: renews a certificate linksec made when it is due; never touches another. */
export async function renewIfDue(
  paths: CertificatePaths,
  nowMs: number,
): Promise<{ outcome: Exclude<CertificateOutcome, 'made'> | 'none'; certificate?: OwnCertificate }> {
  const own = ownCertificate(paths)
  if (!own) return { outcome: fs.existsSync(paths.cert) ? 'operator' : 'none' }
  if (!renewalDue(own, nowMs)) return { outcome: 'kept', certificate: own }
  const pair = await makeSelfSigned(own.hostname)
  return { outcome: 'renewed', certificate: writeOwnCertificate(paths, pair, own.hostname) }
}
