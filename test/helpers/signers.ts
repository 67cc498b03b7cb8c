/**
 * Real OpenPGP signers for tests: keys and signatures made by GnuPG (`gpg`,
 * a temporary GNUPGHOME, no passphrase, agent killed on cleanup) and by
 * Sequoia (`sq` 0.27: --signer-key, --binary; real-peers.md §5). Messages
 * around the signatures are written here by hand (CRLF MIME): PGP/MIME,
 * inline cleartext, sign-after-encrypt and protected headers (RFC 9788).
 */
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { which } from './tools'

export type Tool = 'gpg' | 'sq'

/** needTools() for a whole suite (`describe(..., { skip: missingSigners() })`): fails in CI, skips locally. */
export function missingSigners(tools = ['gpg', 'sq', 'gpgv']): string | false {
  const missing = tools.filter((t) => !which(t))
  if (missing.length === 0) return false
  const msg = `missing ${missing.join(', ')} (apt-get install gnupg gpgv sq)`
  if (process.env.CI) throw new Error(`${msg}; .ci/run must install it`)
  return msg
}

export interface TestSigner {
  tool: Tool
  address: string
  /** Primary key fingerprint, upper-case hex. */
  fingerprint: string
  /** The (sub)key that makes signatures. */
  signingFingerprint: string
  /** The binary certificate as it is now (after revoke(), with the revocation). */
  publicKey(): Buffer
  /** An armored detached signature; `text` makes a canonical-text (0x01) signature. */
  detachSign(data: Buffer, opts?: { text?: boolean; time?: string }): string
  /** A cleartext-signed text (`-----BEGIN PGP SIGNED MESSAGE-----`). */
  clearSign(text: string): string
  /** Revokes the whole key. */
  revoke(): void
  /** Revokes the signing subkey (sq keys, gpg keys made with `subkey`). */
  revokeSigningSubkey(): void
}

export interface GpgKeyOptions {
  address: string
  name?: string
  algo?: 'ed25519' | 'rsa2048' | 'rsa3072'
  /** A certify-only primary with a separate signing subkey. */
  subkey?: boolean
  /** Made in 2020 with a one-day lifetime: expired now (the key, or the subkey with `subkey`). */
  expired?: boolean
}

/** A scratch area for signers; `cleanup()` kills agents and removes it. */
export class SignerKit {
  readonly dir: string
  private readonly homes: string[] = []
  private n = 0

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-signers-'))
  }

  scratch(name: string): string {
    const d = path.join(this.dir, `${++this.n}-${name}`)
    fs.mkdirSync(d, { recursive: true, mode: 0o700 })
    return d
  }

  gpg(opts: GpgKeyOptions): TestSigner {
    const home = this.scratch('gnupg')
    this.homes.push(home)
    return makeGpgSigner(home, opts, (h) => this.homes.push(h))
  }

  sq(opts: { address: string; suite?: 'cv25519' | 'rsa3k'; expired?: boolean }): TestSigner {
    return makeSqSigner(this.scratch('sq'), opts)
  }

  /** Symmetrically encrypted, armored PGP MESSAGE (the verifier never decrypts it). */
  encrypt(data: Buffer): string {
    const home = this.scratch('gnupg-enc')
    this.homes.push(home)
    return gpgRun(home, ['--symmetric', '--armor', '--passphrase', 'not-a-secret'], data).toString('latin1')
  }

  cleanup(): void {
    for (const home of this.homes) {
      try {
        execFileSync('gpgconf', ['--kill', 'gpg-agent'], {
          env: { ...process.env, GNUPGHOME: home },
          stdio: 'ignore',
        })
      } catch {
        // No agent ran in this home.
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

function gpgRun(home: string, args: string[], input?: Buffer): Buffer {
  return execFileSync(
    'gpg',
    ['--batch', '--yes', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '', ...args],
    { env: { ...process.env, GNUPGHOME: home }, input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 26 },
  )
}

const PAST = '20200101T000000'
const PAST_SIGN = '20200101T120000'

function makeGpgSigner(home: string, o: GpgKeyOptions, track: (home: string) => void): TestSigner {
  const uid = `${o.name ?? 'Test'} <${o.address}>`
  const algo = o.algo ?? 'ed25519'
  const past = o.expired ? ['--faked-system-time', PAST] : []
  const expiry = o.expired ? '1d' : 'never'
  gpgRun(home, [
    ...past,
    '--quick-gen-key',
    uid,
    algo,
    o.subkey ? 'cert' : 'sign',
    o.subkey ? 'never' : expiry,
  ])
  const fingerprint = fingerprints(home)[0]!
  if (o.subkey) gpgRun(home, [...past, '--quick-add-key', fingerprint, algo, 'sign', expiry])
  const signingFingerprint = o.subkey ? fingerprints(home)[1]! : fingerprint
  const signTime = o.expired ? ['--faked-system-time', PAST_SIGN] : []
  let revoked: Buffer | undefined
  return {
    tool: 'gpg',
    address: o.address,
    fingerprint,
    signingFingerprint,
    publicKey: () => revoked ?? gpgRun(home, ['--export', fingerprint]),
    detachSign: (data, so = {}) =>
      gpgRun(
        home,
        [
          ...signTime,
          ...(so.text ? ['--textmode'] : []),
          '--digest-algo',
          'SHA256',
          '-u',
          `${signingFingerprint}!`,
          '--armor',
          '--detach-sign',
        ],
        data,
      ).toString('latin1'),
    clearSign: (text) =>
      gpgRun(
        home,
        [...signTime, '--digest-algo', 'SHA256', '-u', `${signingFingerprint}!`, '--clearsign'],
        Buffer.from(text, 'utf8'),
      ).toString('utf8'),
    // The revocation goes into a second home, so this signer can still sign (as a thief would).
    revoke: () => {
      const rev = fs.readFileSync(path.join(home, 'openpgp-revocs.d', `${fingerprint}.rev`), 'latin1')
      const other = fs.mkdtempSync(path.join(home, 'revoked-'))
      track(other)
      gpgRun(other, ['--import'], gpgRun(home, ['--export', fingerprint]))
      // gpg guards the stored certificate with a leading ":" against accidental import.
      gpgRun(other, ['--import'], Buffer.from(rev.replace(/^:-----BEGIN/m, '-----BEGIN'), 'latin1'))
      revoked = gpgRun(other, ['--export', fingerprint])
    },
    revokeSigningSubkey: () => {
      throw new Error('gpg 2.2 cannot revoke a subkey in batch mode; use an sq signer')
    },
  }
}

function fingerprints(home: string): string[] {
  const out = execFileSync('gpg', ['--batch', '--with-colons', '--list-keys'], {
    env: { ...process.env, GNUPGHOME: home },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return out
    .split('\n')
    .filter((l) => l.startsWith('fpr:'))
    .map((l) => l.split(':')[9]!)
}

function sqRun(args: string[], input?: Buffer): Buffer {
  return execFileSync('sq', args, { input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 26 })
}

function makeSqSigner(
  dir: string,
  o: { address: string; suite?: 'cv25519' | 'rsa3k'; expired?: boolean },
): TestSigner {
  const key = path.join(dir, 'key.pgp')
  const cert = path.join(dir, 'cert.pgp')
  const when = o.expired ? ['--creation-time', '20200101', '--expires-in', '1d'] : []
  sqRun([
    'key',
    'generate',
    '--userid',
    `<${o.address}>`,
    '--cipher-suite',
    o.suite ?? 'cv25519',
    ...when,
    '--export',
    key,
  ])
  sqRun(['key', 'extract-cert', '--binary', '-o', cert, key])
  const inspect = sqRun(['inspect', cert]).toString('utf8')
  const fingerprint = /Fingerprint: ([0-9A-F]{40})/.exec(inspect)![1]!
  const signingFingerprint = signingSubkey(inspect)
  const time = o.expired ? ['--time', '20200101T120000'] : []
  let subkeyRevocations: Buffer[] = []
  let keyRevocation: Buffer | undefined
  const merge = () => {
    let out: Buffer = fs.readFileSync(cert)
    if (subkeyRevocations.length) {
      const parts = subkeyRevocations.map((b, i) => {
        const f = path.join(dir, `rev-${i}.pgp`)
        fs.writeFileSync(f, b)
        return f
      })
      const merged = path.join(dir, 'merged.pgp')
      sqRun(['keyring', 'merge', '--binary', '-o', merged, cert, ...parts])
      out = sqRun(['key', 'extract-cert', '--binary', merged])
    }
    // `sq revoke certificate` prints a bare revocation signature; it belongs right after the primary key.
    return keyRevocation ? afterFirstPacket(out, keyRevocation) : out
  }
  return {
    tool: 'sq',
    address: o.address,
    fingerprint,
    signingFingerprint,
    publicKey: merge,
    detachSign: (data, so = {}) => {
      if (so.text) throw new Error('sq 0.27 makes binary signatures only')
      return sqRun(['sign', '--detached', ...time, '--signer-key', key], data).toString('latin1')
    },
    clearSign: (text) =>
      sqRun(
        ['sign', '--cleartext-signature', ...time, '--signer-key', key],
        Buffer.from(text, 'utf8'),
      ).toString('utf8'),
    // "compromised" is a hard revocation: no signature by the key counts any more.
    revoke: () => {
      keyRevocation = sqRun([
        'revoke',
        'certificate',
        '--certificate',
        key,
        '--binary',
        'compromised',
        'test',
      ])
    },
    revokeSigningSubkey: () => {
      const args = [
        'revoke',
        'subkey',
        '--certificate',
        key,
        '--binary',
        signingFingerprint,
        'compromised',
        'test',
      ]
      subkeyRevocations = [...subkeyRevocations, sqRun(args)]
    },
  }
}

/** Inserts `extra` after the first packet of `data` (new-format packet headers, as sq writes them). */
function afterFirstPacket(data: Buffer, extra: Buffer): Buffer {
  const a = data[1]!
  let len: number
  let header: number
  if (a < 192) [len, header] = [a, 2]
  else if (a < 224) [len, header] = [((a - 192) << 8) + data[2]! + 192, 3]
  else [len, header] = [data.readUInt32BE(2), 6]
  const end = header + len
  return Buffer.concat([data.subarray(0, end), extra, data.subarray(end)])
}

/** The fingerprint of the subkey whose flags say "signing" in `sq inspect` output. */
function signingSubkey(inspect: string): string {
  const blocks = inspect.split(/\n\s*Subkey: /).slice(1)
  const b = blocks.find((x) => /Key flags: [^\n]*signing/.test(x))
  if (!b) throw new Error('sq key without a signing subkey')
  return b.slice(0, 40)
}

// ------------------------------------------------------------------ messages

export interface Envelope {
  from: string
  to?: string
  subject?: string
  /** Extra top-level header lines (already formatted, no CRLF). */
  extra?: string[]
}

const crlf = (s: string) => s.replace(/\r?\n/g, '\r\n')

function topHeaders(e: Envelope): string {
  return [
    `From: ${e.from}`,
    `To: ${e.to ?? 'bob@example.net'}`,
    `Subject: ${e.subject ?? 'signed test message'}`,
    'Date: Sun, 22 Nov 2026 10:00:00 +0000',
    `Message-ID: <${Math.random().toString(36).slice(2)}@test.invalid>`,
    'MIME-Version: 1.0',
    ...(e.extra ?? []),
  ].join('\r\n')
}

/** A text/plain entity (headers + body), quoted-printable when asked. */
export function textPart(text: string, opts: { qp?: boolean; extraHeaders?: string[] } = {}): Buffer {
  const body = opts.qp ? encodeQp(text) : crlf(text)
  const headers = [
    `Content-Type: text/plain; charset=utf-8`,
    `Content-Transfer-Encoding: ${opts.qp ? 'quoted-printable' : '7bit'}`,
    ...(opts.extraHeaders ?? []),
  ]
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`, 'utf8')
}

/** multipart/mixed: a text part and a base64 attachment. */
export function mixedWithAttachment(text: string, attachment: Buffer, name = 'data.bin'): Buffer {
  const b = `mixed-${Math.random().toString(36).slice(2)}`
  const b64 = attachment.toString('base64').replace(/.{1,76}/g, '$&\r\n')
  return Buffer.concat([
    Buffer.from(`Content-Type: multipart/mixed; boundary="${b}"\r\n\r\n--${b}\r\n`),
    textPart(text),
    Buffer.from(
      `\r\n--${b}\r\nContent-Type: application/octet-stream; name="${name}"\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}--${b}--\r\n`,
    ),
  ])
}

/** multipart/encrypted (RFC 3156 §4) around an armored PGP MESSAGE. */
export function encryptedPart(armored: string): Buffer {
  const b = `enc-${Math.random().toString(36).slice(2)}`
  return Buffer.from(
    crlf(
      `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="${b}"\n\n--${b}\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n--${b}\nContent-Type: application/octet-stream; name="encrypted.asc"\n\n${armored.trim()}\n--${b}--\n`,
    ),
  )
}

/** A text part carrying protected headers (RFC 9788 hp="clear", or legacy protected-headers="v1"). */
export function protectedTextPart(text: string, from: string, style: 'hp' | 'v1' = 'hp'): Buffer {
  const marker = style === 'hp' ? 'hp="clear"' : 'protected-headers="v1"'
  return Buffer.from(
    crlf(
      `Content-Type: text/plain; charset=utf-8; ${marker}\nFrom: ${from}\nSubject: signed test message\n\n${text}`,
    ),
  )
}

/** PGP/MIME multipart/signed around `inner`, signed by `signer` over the exact octets. */
export function pgpMimeMessage(
  signer: TestSigner,
  env: Envelope,
  inner: Buffer,
  opts: { text?: boolean } = {},
): Buffer {
  const sig = signer.detachSign(inner, { text: opts.text })
  return assembleSigned(env, inner, sig)
}

/** The multipart/signed frame; exported so tests can put any signature in it. */
export function assembleSigned(env: Envelope, inner: Buffer, armoredSig: string): Buffer {
  const b = `signed-${Math.random().toString(36).slice(2)}`
  const head = `${topHeaders(env)}\r\nContent-Type: multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="${b}"\r\n\r\nThis is an OpenPGP/MIME signed message (RFC 3156).\r\n--${b}\r\n`
  const tail = `\r\n--${b}\r\nContent-Type: application/pgp-signature; name="signature.asc"\r\nContent-Description: OpenPGP digital signature\r\n\r\n${crlf(armoredSig.trim())}\r\n--${b}--\r\n`
  return Buffer.concat([Buffer.from(head), inner, Buffer.from(tail)])
}

/** An inline (cleartext) signed text/plain message. */
export function inlineMessage(
  signer: TestSigner,
  env: Envelope,
  text: string,
  opts: { qp?: boolean } = {},
): Buffer {
  const signed = signer.clearSign(text)
  const body = opts.qp ? encodeQp(signed) : crlf(signed)
  const cte = opts.qp ? 'quoted-printable' : '7bit'
  return Buffer.from(
    `${topHeaders(env)}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${body}`,
    'utf8',
  )
}

/** A plain unsigned message. */
export function plainMessage(env: Envelope, text = 'hello\n'): Buffer {
  return Buffer.from(
    `${topHeaders(env)}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${crlf(text)}`,
    'utf8',
  )
}

/** Quoted-printable (RFC 2045 §6.7) of UTF-8 text, CRLF lines, soft breaks at 76. */
export function encodeQp(text: string): string {
  return crlf(text)
    .split('\r\n')
    .map((line) => {
      let enc = ''
      for (const byte of Buffer.from(line, 'utf8')) {
        const c = String.fromCharCode(byte)
        enc +=
          byte === 0x3d || byte > 0x7e || (byte < 0x20 && byte !== 0x09)
            ? `=${byte.toString(16).toUpperCase().padStart(2, '0')}`
            : c
      }
      enc = enc.replace(/[ \t]$/, (m) => `=${m.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
      const out: string[] = []
      while (enc.length > 76) {
        let cut = 75
        while (enc[cut - 1] === '=' || enc[cut - 2] === '=') cut--
        out.push(enc.slice(0, cut) + '=')
        enc = enc.slice(cut)
      }
      out.push(enc)
      return out.join('\r\n')
    })
    .join('\r\n')
}
