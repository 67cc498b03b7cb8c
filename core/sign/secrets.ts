/**
 * Secret signing keys, `[sign] secret_dir` (default config/secret/): one
 * binary transferable secret key per address, `<address>.key`, the
 * directory 0700 and every file 0600. A file other users could read is
 * refused by name (as ssh refuses a private key readable by others). The
 * directory is re-read when its mtime changes.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as openpgp from 'openpgp'
import { describeError, LinksecError } from '../errors'
import type { Logger } from '../log'
import { addressKey, parseAddress } from '../keys/address'
import { keyAddresses } from '../keys/material'
import { addressOfKeyFile, keyFilePath } from '../keys/store'
import { signingKeyFrom, type SigningKey } from './signature'

const SUFFIX = '.key'
/** How often (ms) the directory's mtime is looked at. */
const STAT_EVERY_MS = 1000
/** A key is re-checked for validity (expiry, revocation) this often (ms). */
const RECHECK_MS = 3600_000

const secretError = (code: string, msg: string) => new LinksecError(code, msg, { temporary: false })

interface Entry {
  file: string
  key: openpgp.PrivateKey
  signing?: SigningKey
  problem?: string
  checkedAt: number
}

/** A secret file others may read, or a directory others may enter; undefined when private. */
export function exposure(file: string, st: fs.Stats): string | undefined {
  if ((st.mode & 0o077) === 0) return undefined
  const mode = (st.mode & 0o777).toString(8)
  return `${file} is readable by other users (mode ${mode}); run chmod ${st.isDirectory() ? '700' : '600'} ${file}`
}

export class SecretStore {
  private entries = new Map<string, Entry>()
  /** Files refused at the last load (unreadable, readable by others, not a key), by address: why. */
  private refused = new Map<string, string>()
  private mtimeMs = -2
  private checkedAt = -Infinity
  private loading: Promise<void> | undefined

  constructor(
    readonly dir: string,
    private readonly log?: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Start-up check: throws naming the first secret file (or the directory) others can read. */
  assertPrivate(): void {
    if (!fs.existsSync(this.dir)) return
    const problem =
      exposure(this.dir, fs.statSync(this.dir)) ??
      this.files()
        .map(([, f]) => exposure(f, fs.statSync(f)))
        .find(Boolean)
    if (problem) throw secretError('LINKSEC_SIGN_SECRET_MODE', `[sign] secret_dir: ${problem}`)
  }

  /** The key that signs for `address` now, or undefined when none is held (or it cannot sign: see problem()). */
  async signer(address: string): Promise<SigningKey | undefined> {
    await this.refresh()
    const e = this.entries.get(addressKey(address))
    if (!e) return undefined
    if (this.now() - e.checkedAt >= RECHECK_MS) await this.check(address, e)
    return e.signing
  }

  /** Why the key held for `address` cannot sign, or undefined. */
  async problem(address: string): Promise<string | undefined> {
    await this.refresh()
    const key = addressKey(address)
    return this.entries.get(key)?.problem ?? this.refused.get(key)
  }

  /** Addresses with a secret key, and whether each can sign now. */
  async list(): Promise<{ address: string; file: string; fingerprint: string; problem?: string }[]> {
    await this.refresh()
    return [...this.entries].map(([address, e]) => ({
      address,
      file: e.file,
      fingerprint: e.key.getFingerprint().toUpperCase(),
      problem: e.problem,
    }))
  }

  /**
   * Stores an unprotected secret key for `address` (or its only address):
   * the directory is made 0700, the file written 0600. Refuses a
   * passphrase-protected key, a key without that user ID, one that cannot sign.
   */
  async save(
    data: Buffer,
    address?: string,
    opts: { check?: (address: string, fingerprint: string) => Promise<void> } = {},
  ): Promise<{ address: string; file: string; key: openpgp.PrivateKey }> {
    const key = await readSecretKey(data)
    const addrs = keyAddresses(key.toPublic())
    const target = parseAddress(address ?? (addrs.length === 1 ? addrs[0]! : ''))
    if (!target)
      throw secretError(
        'LINKSEC_SIGN_ADDRESS',
        addrs.length > 1
          ? `the key has several addresses (${addrs.join(', ')}); name one`
          : 'name the address the key signs for',
      )
    const a = addressKey(target)
    if (!addrs.includes(a))
      throw secretError(
        'LINKSEC_SIGN_ADDRESS',
        `the key has no user ID for ${a} (it has: ${addrs.join(', ') || 'none'})`,
      )
    await signingKeyFrom(key, a, new Date(this.now()))
    await opts.check?.(a, key.getFingerprint().toUpperCase())
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    fs.chmodSync(this.dir, 0o700)
    const file = keyFilePath(this.dir, a, SUFFIX)
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, key.write(), { mode: 0o600 })
    fs.renameSync(tmp, file)
    this.checkedAt = -Infinity
    return { address: a, file, key }
  }

  private files(): [string, string][] {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      return []
    }
    return names
      .filter((n) => n.endsWith(SUFFIX))
      .map((n) => [addressOfKeyFile(n.slice(0, -SUFFIX.length)), path.join(this.dir, n)])
  }

  private async refresh(): Promise<void> {
    const now = this.now()
    if (now - this.checkedAt < STAT_EVERY_MS) return
    this.checkedAt = now
    let mtimeMs = -1
    try {
      mtimeMs = fs.statSync(this.dir).mtimeMs
    } catch {
      // No directory yet: no keys.
    }
    if (mtimeMs === this.mtimeMs) return
    this.loading ??= this.load(mtimeMs).finally(() => (this.loading = undefined))
    await this.loading
  }

  private async load(mtimeMs: number): Promise<void> {
    const next = new Map<string, Entry>()
    const refused = new Map<string, string>()
    for (const [name, file] of this.files()) {
      const address = parseAddress(name)
      if (!address) continue
      try {
        const bad = exposure(file, fs.statSync(file))
        if (bad) throw new Error(bad)
        const e: Entry = { file, key: await readSecretKey(fs.readFileSync(file)), checkedAt: 0 }
        await this.check(addressKey(address), e)
        next.set(addressKey(address), e)
      } catch (err) {
        this.log?.error('secret key refused', { file, error: describeError(err) })
        refused.set(addressKey(address), `the secret key file ${file} was refused: ${describeError(err)}`)
      }
    }
    this.entries = next
    this.refused = refused
    this.mtimeMs = mtimeMs
  }

  private async check(address: string, e: Entry): Promise<void> {
    e.checkedAt = this.now()
    try {
      e.signing = await signingKeyFrom(e.key, address, new Date(this.now()))
      e.problem = undefined
    } catch (err) {
      e.signing = undefined
      e.problem = describeError(err)
    }
  }
}

/** An unprotected OpenPGP secret key (binary or armored); a protected one is refused with the way out. */
export async function readSecretKey(data: Buffer): Promise<openpgp.PrivateKey> {
  const armored = /-----BEGIN PGP PRIVATE KEY BLOCK-----/.test(data.subarray(0, 100).toString('latin1'))
  const key = await (
    armored
      ? openpgp.readPrivateKey({ armoredKey: data.toString('latin1') })
      : openpgp.readPrivateKey({ binaryKey: new Uint8Array(data) })
  ).catch((e: unknown) => {
    throw secretError('LINKSEC_SIGN_KEY', `not an OpenPGP secret key: ${describeError(e)}`)
  })
  if (!key.isDecrypted())
    throw secretError(
      'LINKSEC_SIGN_KEY_PROTECTED',
      'the secret key is protected by a passphrase; linksec signs unattended and refuses it. Export it without one: ' +
        'copy the GnuPG home (cp -a ~/.gnupg /tmp/g), run gpg --homedir /tmp/g --passwd KEYID and leave the new passphrase empty, ' +
        'then gpg --homedir /tmp/g --export-secret-keys KEYID > key.pgp (and delete /tmp/g afterwards)',
    )
  return key
}
