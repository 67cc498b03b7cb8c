/**
 * What the signing tests through a real MTA share: the domain `sign.test`
 * whose `_linksec` record (on a loopback DNS server) says sig=required, the
 * messages its users send (plain, 8-bit with a binary attachment), swaks
 * with SMTP AUTH, and the checks at the sink: gpg (and sq, rnp) verify the
 * detached parts, linksec's own verifier passes the message.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { loadConfig } from '../../core/config'
import { keyStoreFor } from '../../core/keys'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { verifyMessage } from '../../core/verify'
import { decodeTransfer, headerValue, parseContentType, parseEntity, splitMultipart } from '../../core/mime'
import { startDnsServer, type TestDnsServer } from './dns-server'
import { detachedParts, verifyWith, type Verifier } from './verifiers'

export const SIGN_DOMAIN = 'sign.test'
export const ALICE = `alice@${SIGN_DOMAIN}`
export const PASSWORD = 'not-a-secret'
const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')

/** A loopback DNS server where sign.test declares sig=required. */
export function signDns(): Promise<TestDnsServer> {
  return startDnsServer({
    [`_linksec.${SIGN_DOMAIN}`]: { TXT: ['v=LINKSEC1; level=3; ttl=3600; sig=required'] },
  })
}

/**
 * A Cyrus sasldb with USERS (password PASSWORD) in SCRATCH, readable by
 * Postfix's smtpd (it runs as the postfix user), and
 * `<config_directory>/sasl/smtpd.conf` (Debian's place for it) naming it.
 */
export function saslConfig(confDir: string, scratch: string, users: string[]): void {
  const db = path.join(scratch, 'sasldb2')
  for (const u of users) {
    const [local, realm] = u.split('@') as [string, string]
    execFileSync('saslpasswd2', ['-f', db, '-p', '-c', '-u', realm, local], { input: `${PASSWORD}\n` })
  }
  fs.chmodSync(db, 0o644)
  fs.mkdirSync(path.join(confDir, 'sasl'), { recursive: true })
  fs.writeFileSync(
    path.join(confDir, 'sasl', 'smtpd.conf'),
    `pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: ${db}\n`,
  )
}

/** `linksec keys generate ADDRESS --config DIR` (the running server picks it up within a second). */
export function generateKey(configDir: string, address: string): void {
  const r = spawnSync(process.execPath, [BIN, 'keys', 'generate', address, '--config', configDir], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.equal(r.status, 0, r.stderr)
}

export const BINARY = Buffer.from(
  Array.from({ length: 3000 }, (_, i) => (i * 131 + 7) & 0xff).map((v) => (v === 10 || v === 13 ? 0x20 : v)),
)
export const EIGHT_BIT = Buffer.from('Grüße aus Köln  \r\nFrom the start\r\n', 'utf8')

export function plainMessage(from: string, subject = 'plain'): Buffer {
  return Buffer.from(
    `From: <${from}>\r\nTo: <bob@example.net>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}.${Date.now()}@${SIGN_DOMAIN}>\r\n` +
      `Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello from ${from}.\r\n`,
  )
}

/** 8-bit text and a base64 attachment (as a client sends them with 8BITMIME). */
export function mixedMessage(from: string, subject = 'mixed'): Buffer {
  const b = 'mixed-boundary-1'
  return Buffer.concat([
    Buffer.from(
      `From: <${from}>\r\nTo: <bob@example.net>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}.${Date.now()}@${SIGN_DOMAIN}>\r\n` +
        `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${b}"\r\n\r\n--${b}\r\n` +
        'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
    ),
    EIGHT_BIT,
    Buffer.from(
      `\r\n--${b}\r\nContent-Type: application/octet-stream; name="x.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n`,
    ),
    Buffer.from(BINARY.toString('base64').replace(/.{1,76}/g, '$&\r\n')),
    Buffer.from(`--${b}--\r\n`),
  ])
}

export interface Submission {
  port: number
  message: Buffer
  from: string
  /** SMTP AUTH login (PLAIN over STARTTLS); none = unauthenticated. */
  login?: string
  tls?: boolean
  /** RCPT TO; default bob@example.net. */
  to?: string
  /** Send `message` byte for byte (swaks --no-data-fixup, which adds CRLF): it must end with CRLF "." itself. */
  raw?: boolean
}

/**
 * One message with swaks; returns the reply to the end of DATA and the
 * transcript. Asynchronous on purpose: the loopback DNS server runs in this
 * test process, and a spawnSync would stop it answering while the MTA's
 * linksec looks up `_linksec` records (the lookup then times out).
 */
export function submit(s: Submission): Promise<{ dataReply: string; transcript: string }> {
  const args = [
    '--server',
    `127.0.0.1:${s.port}`,
    '--helo',
    'client.sign.test',
    '--from',
    s.from,
    '--to',
    s.to ?? 'bob@example.net',
  ]
  args.push('--data', '-', '--timeout', '60')
  if (s.raw) args.push('--no-data-fixup')
  if (s.tls || s.login) args.push('--tls')
  if (s.login) args.push('--auth', 'PLAIN', '--auth-user', s.login, '--auth-password', PASSWORD)
  return new Promise((resolve, reject) => {
    const child = spawn('swaks', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let transcript = ''
    child.stdout.on('data', (b: Buffer) => (transcript += b.toString()))
    child.stderr.on('data', (b: Buffer) => (transcript += b.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
    child.on('error', reject)
    child.stdin.end(s.message)
    child.on('close', () => {
      clearTimeout(timer)
      const lines = transcript.split(/\r?\n/)
      const dot = lines.findIndex((l) => /^ [-~*]> \.$/.test(l))
      const reply = dot >= 0 ? /^<\S*\s+(\d{3}[ -].*)$/.exec(lines[dot + 1] ?? '') : null
      resolve({ dataReply: reply?.[1] ?? '', transcript })
    })
  })
}

/** The message at the sink is signed, every verifier accepts it, and linksec's verifier passes it. */
export async function assertSignedAndVerified(
  message: Buffer,
  configDir: string,
  scratch: string,
  dns: TestDnsServer,
  address = ALICE,
  verifiers: Verifier[] = ['gpg', 'sq', 'rnp'],
): Promise<void> {
  const top = parseEntity(message)
  assert.equal(parseContentType(headerValue(top.headers, 'content-type')).type, 'multipart/signed')
  const cfg = loadConfig(configDir)
  const rt = createRuntime(
    {
      ...cfg,
      resolver: { ...cfg.resolver, servers: [dns.address] },
      keys: { ...cfg.keys, methods: ['local'] },
    },
    { log: silentLogger, metrics: createMetrics({ processMetrics: false }) },
  )
  const cert = (await keyStoreFor(rt).lookup(address))!.binary
  for (const tool of verifiers) {
    const v = verifyWith(tool, scratch, cert, message)
    assert.ok(v.ok, `${tool} rejects the signed message: ${v.said}`)
  }
  const d = await verifyMessage(rt, message)
  assert.equal(d.result, 'pass', `linksec: ${d.facts.reason}`)
}

/** The 8-bit text and the attachment of a signed mixedMessage decode to what was sent. */
export function assertPartsIntact(message: Buffer): void {
  const inner = parseEntity(detachedParts(message).data)
  const mp = splitMultipart(
    inner.body,
    parseContentType(headerValue(inner.headers, 'content-type')).params.boundary!,
  )
  const [text, bin] = mp.parts.map((p) => parseEntity(p))
  assert.deepEqual(
    decodeTransfer(text!.body, headerValue(text!.headers, 'content-transfer-encoding')),
    EIGHT_BIT,
  )
  assert.deepEqual(decodeTransfer(bin!.body, headerValue(bin!.headers, 'content-transfer-encoding')), BINARY)
}

/**
 * One message with real mutt (Debian's, GnuTLS) over SMTP submission:
 * STARTTLS, AUTH PLAIN as LOGIN with PASSWORD, the server's self-signed
 * certificate trusted through `certificate_file` (no prompt in batch mode),
 * no host name check (the certificate names the MTA, mutt connects to
 * 127.0.0.1) and no lookup of its own name. Resolves with mutt's exit code
 * and output.
 */
export function muttSubmit(o: {
  port: number
  login: string
  certPem: string
  subject: string
  to?: string
  body: string
  home: string
}): Promise<{ code: number | null; out: string }> {
  fs.mkdirSync(path.join(o.home, 'Mail'), { recursive: true })
  const certFile = path.join(o.home, 'certificates')
  fs.writeFileSync(certFile, o.certPem)
  const muttrc = path.join(o.home, 'muttrc')
  fs.writeFileSync(
    muttrc,
    [
      `set smtp_url="smtp://${o.login.replace('@', '%40')}@127.0.0.1:${o.port}/"`,
      `set smtp_pass="${PASSWORD}"`,
      'set smtp_authenticators="plain"',
      'set ssl_starttls=yes',
      'set ssl_force_tls=yes',
      `set certificate_file="${certFile}"`,
      'set ssl_verify_host=no',
      `set from="${o.login}"`,
      'set use_from=yes',
      'set envelope_from=yes',
      'set hostname="client.sign.test"',
      'set copy=no',
      'set record=""',
      `set folder="${o.home}/Mail"`,
      `set spoolfile="${o.home}/Mail/inbox"`,
      'set charset="utf-8"',
      'set send_charset="us-ascii:utf-8"',
      '',
    ].join('\n'),
  )
  return new Promise((resolve, reject) => {
    const child = spawn('mutt', ['-n', '-F', muttrc, '-s', o.subject, '--', o.to ?? 'bob@example.net'], {
      env: { ...process.env, HOME: o.home, MAIL: path.join(o.home, 'Mail', 'inbox'), EMAIL: o.login },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.stdin.end(o.body)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}
