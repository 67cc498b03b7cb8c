/**
 * `linksec tls init [--postfix | --haraka DIR] [--hostname H] [--config DIR]`:
 * a self-signed ECDSA P-256 certificate (SAN = the host name, one year) so
 * this server offers STARTTLS (core/tls/certificate.ts). For Postfix it writes
 * [tls] cert_file/key_file and prints the `postconf -e` lines; for Haraka it
 * writes DIR/config/tls_cert.pem, tls_key.pem (0600) and dhparams.pem and
 * prints what tls.ini needs. A certificate linksec did not make is never
 * replaced (exit 73). `linksec tls show` prints what is there.
 * Exit: 0 written, 2 usage, 65 bad host name, 73 an operator's certificate is there.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {
  certificateFacts,
  ffdhe2048Sync,
  isCertHostname,
  makeSelfSignedSync,
} from '../../core/tls/certificate'
import {
  certificateHostname,
  certificatePaths,
  ownCertificate,
  writeOwnCertificate,
  type CertificatePaths,
} from '../../core/tls/store'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

export const USAGE =
  'usage: linksec tls init [--postfix | --haraka DIR] [--hostname H] [--config DIR]\n' +
  '       linksec tls show [--haraka DIR] [--config DIR]\n'

/** Haraka's config directory: DIR/config when DIR is a Haraka directory, else DIR itself. */
function harakaConfigDirOf(dir: string): string {
  const sub = path.join(dir, 'config')
  return fs.existsSync(sub) ? path.resolve(sub) : path.resolve(dir)
}

function harakaPaths(dir: string): CertificatePaths {
  const cfg = harakaConfigDirOf(dir)
  return { cert: path.join(cfg, 'tls_cert.pem'), key: path.join(cfg, 'tls_key.pem') }
}

/** The `postconf -e` lines that make Postfix offer STARTTLS with this certificate (and try it outbound). */
function postconfLines(paths: CertificatePaths): string[] {
  return [
    `postconf -e 'smtpd_tls_cert_file = ${paths.cert}'`,
    `postconf -e 'smtpd_tls_key_file = ${paths.key}'`,
    `postconf -e 'smtpd_tls_security_level = may'`,
    `postconf -e 'smtp_tls_security_level = may'`,
    `postconf -e 'smtpd_tls_received_header = yes'`,
  ]
}

const HARAKA_TLS_INI = '[main]\nkey=tls_key.pem\ncert=tls_cert.pem\ndhparam=dhparams.pem\n'

function refuseOperatorCertificate(paths: CertificatePaths): boolean {
  const exists = fs.existsSync(paths.cert) || fs.existsSync(paths.key)
  if (!exists || ownCertificate(paths)) return false
  process.stderr.write(
    `linksec tls: ${paths.cert} (or its key) is there and linksec did not make it; left untouched\n`,
  )
  return true
}

function init(args: ParsedArgs): number {
  const config = configFromArgs(args)
  const harakaDir = typeof args.flags.haraka === 'string' ? args.flags.haraka : undefined
  if (args.flags.haraka === true || (harakaDir && args.flags.postfix)) {
    process.stderr.write(USAGE)
    return 2
  }
  const hostname = typeof args.flags.hostname === 'string' ? args.flags.hostname : certificateHostname(config)
  if (!isCertHostname(hostname)) {
    process.stderr.write(`linksec tls: "${hostname}" is not a host name; give one with --hostname\n`)
    return 65
  }
  const paths = harakaDir ? harakaPaths(harakaDir) : certificatePaths(config)
  if (refuseOperatorCertificate(paths)) return 73
  const made = writeOwnCertificate(paths, makeSelfSignedSync(hostname), hostname)
  const out = [`# self-signed certificate for ${hostname}, valid until ${made.notAfter.toISOString()}`]
  out.push(`# certificate ${paths.cert}`, `# key         ${paths.key} (0600)`)
  if (harakaDir) {
    const dh = path.join(path.dirname(paths.cert), 'dhparams.pem')
    if (!fs.existsSync(dh)) fs.writeFileSync(dh, ffdhe2048Sync(), { mode: 0o644 })
    out.push("# config/tls.ini needs (these are also Haraka's defaults):", HARAKA_TLS_INI.trimEnd())
    out.push('# and `tls` in config/plugins')
  } else {
    out.push(...postconfLines(paths), 'postfix reload')
  }
  process.stdout.write(out.join('\n') + '\n')
  return 0
}

function show(args: ParsedArgs): number {
  const config = configFromArgs(args)
  const paths =
    typeof args.flags.haraka === 'string' ? harakaPaths(args.flags.haraka) : certificatePaths(config)
  const pem = fs.existsSync(paths.cert) ? fs.readFileSync(paths.cert) : undefined
  const facts = pem && certificateFacts(pem)
  if (!facts) {
    process.stdout.write(`${paths.cert}: no certificate\n`)
    return 1
  }
  const who = ownCertificate(paths)
    ? 'made by linksec (renewed 30 days before expiry)'
    : "operator's (never touched)"
  process.stdout.write(
    `${paths.cert}: ${facts.subjectAltName}, valid until ${facts.notAfter.toISOString()}, ${who}\n`,
  )
  return 0
}

export const OPTIONS = {
  postfix: { type: 'boolean' },
  haraka: { type: 'string' },
  hostname: { type: 'string' },
} satisfies OptionTable

export async function run(args: ParsedArgs): Promise<number> {
  const [verb, ...rest] = args.positional
  if (rest.length > 0) {
    process.stderr.write(USAGE)
    return 2
  }
  if (verb === 'init') return init(args)
  if (verb === 'show') return show(args)
  process.stderr.write(USAGE)
  return 2
}
