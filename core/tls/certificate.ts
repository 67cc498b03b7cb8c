/**
 * Self-signed server certificates (seed 004: a certificate that protects
 * against every passive tap costs nothing). ECDSA P-256, SAN = the host name,
 * valid one year. Made with the `openssl` command: it is on every Debian mail
 * host (ca-certificates depends on it), makes EC keys and X.509v3 extensions in
 * one call, and needs no JavaScript polyfill inside the Haraka process (the
 * maintained pure-JS option, @peculiar/x509, needs `reflect-metadata` patching
 * the global Reflect object). Node's own X509Certificate reads them back.
 */
import { execFile, execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'

export const CERT_DAYS = 365
/** A certificate linksec made is renewed this long before it expires. */
export const RENEW_BEFORE_DAYS = 30

export interface CertificatePair {
  keyPem: string
  certPem: string
}

export interface CertificateFacts {
  notAfter: Date
  notBefore: Date
  /** SHA-256 fingerprint, colon-separated hex (Node's X509Certificate form). */
  fingerprint256: string
  subjectAltName: string
}

/** openssl arguments for one self-signed P-256 server certificate for `hostname`. */
export function opensslArgs(hostname: string, keyFile: string, certFile: string, days = CERT_DAYS): string[] {
  return [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', String(days), '-sha256',
    '-subj', `/CN=${hostname}`,
    '-addext', `subjectAltName=DNS:${hostname}`,
    '-addext', 'basicConstraints=critical,CA:FALSE',
    '-addext', 'keyUsage=critical,digitalSignature',
    '-addext', 'extendedKeyUsage=serverAuth',
  ] // prettier-ignore
}

/** A host name we can put in a certificate's subject and SAN. */
export function isCertHostname(name: string): boolean {
  return /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(
    name,
  )
}

function withScratch<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-tls-'))
  try {
    return fn(dir)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

function readPair(dir: string): CertificatePair {
  return {
    keyPem: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'),
    certPem: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
  }
}

function checkedHostname(hostname: string): string {
  if (!isCertHostname(hostname)) throw new Error(`"${hostname}" is not a host name a certificate can name`)
  return hostname
}

/** Synchronous: the Haraka plugin makes its certificate inside register(), before Haraka loads TLS. */
export function makeSelfSignedSync(hostname: string, days = CERT_DAYS): CertificatePair {
  const host = checkedHostname(hostname)
  return withScratch((dir) => {
    execFileSync('openssl', opensslArgs(host, path.join(dir, 'key.pem'), path.join(dir, 'cert.pem'), days), {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 30_000,
    })
    return readPair(dir)
  })
}

const execFileAsync = promisify(execFile)

export async function makeSelfSigned(hostname: string, days = CERT_DAYS): Promise<CertificatePair> {
  const host = checkedHostname(hostname)
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'linksec-tls-'))
  try {
    await execFileAsync(
      'openssl',
      opensslArgs(host, path.join(dir, 'key.pem'), path.join(dir, 'cert.pem'), days),
      {
        timeout: 30_000,
      },
    )
    return readPair(dir)
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true })
  }
}

/** Reads a PEM certificate's dates and fingerprint; undefined when it is not one. */
export function certificateFacts(pem: string | Buffer): CertificateFacts | undefined {
  try {
    const c = new X509Certificate(pem)
    return {
      notAfter: new Date(c.validTo),
      notBefore: new Date(c.validFrom),
      fingerprint256: c.fingerprint256,
      subjectAltName: c.subjectAltName ?? '',
    }
  } catch {
    return undefined
  }
}

/** RFC 7919 ffdhe2048: Haraka wants dhparams.pem and would otherwise run a slow `openssl dhparam 2048`. */
export function ffdhe2048Sync(): string {
  return execFileSync(
    'openssl',
    ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'group:ffdhe2048'],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    },
  )
}
