/**
 * The local key store, `[keys] dir` (default config/keys/): the keys this
 * server publishes over WKD and trusts first when verifying. One file per
 * address, `<address>.pgp`, binary, holding only that address's user ID.
 * Files named otherwise (`*.asc`, `*.pgp`) are indexed under every address
 * their keys carry. The directory is re-read when its mtime changes.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describeError, LinksecError } from '../errors'
import type { Logger } from '../log'
import { addressKey, parseAddress } from './address'
import { keyAddresses, readKeyBlob, ringFor, type KeyRing } from './material'
import { wkdHash } from './names'

export interface StoredKey {
  address: string
  file: string
  ring: KeyRing
}

interface Snapshot {
  mtimeMs: number
  byAddress: Map<string, StoredKey>
}

/** How often (ms) the directory's mtime is looked at. */
const STAT_EVERY_MS = 1000

export class KeyStore {
  private snap: Snapshot | undefined
  private loading: Promise<Snapshot> | undefined
  private checkedAt = -Infinity

  constructor(
    readonly dir: string,
    private readonly log?: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async lookup(address: string): Promise<KeyRing | undefined> {
    return (await this.snapshot()).byAddress.get(addressKey(address))?.ring
  }

  /**
   * Without I/O: the ring, null when the store surely has none, undefined
   * when the directory is due for a look (then use lookup()).
   */
  peek(address: string): KeyRing | null | undefined {
    if (!this.snap || this.now() - this.checkedAt >= STAT_EVERY_MS) return undefined
    return this.snap.byAddress.get(addressKey(address))?.ring ?? null
  }

  async list(): Promise<StoredKey[]> {
    return [...(await this.snapshot()).byAddress.values()].sort((a, b) => a.address.localeCompare(b.address))
  }

  /** Keys for a WKD request: the domain and the hash of the local part (`l` picks among equal hashes). */
  async byWkd(domain: string, hash: string, l?: string): Promise<StoredKey | undefined> {
    const d = domain.toLowerCase()
    const hits = (await this.list()).filter((k) => {
      const a = parseAddress(k.address)
      return a?.domain === d && wkdHash(a.local) === hash
    })
    return hits.find((k) => l !== undefined && k.address.startsWith(`${l.toLowerCase()}@`)) ?? hits[0]
  }

  async hasDomain(domain: string): Promise<boolean> {
    const d = domain.toLowerCase()
    return (await this.list()).some((k) => k.address.endsWith(`@${d}`))
  }

  /**
   * Stores the keys in `data` for `address` (or for the one address they
   * carry). Refuses keys without a user ID for the address.
   */
  async add(data: Buffer, address?: string): Promise<StoredKey> {
    const keys = await readKeyBlob(data).catch((e: unknown) => {
      throw new LinksecError('LINKSEC_KEY_UNREADABLE', `not an OpenPGP key: ${describeError(e)}`, {
        temporary: false,
      })
    })
    const addrs = [...new Set(keys.flatMap(keyAddresses))]
    const target = address ?? pickOnly(addrs)
    const parsed = parseAddress(target)
    if (!parsed)
      throw new LinksecError('LINKSEC_KEY_ADDRESS', `"${target}" is not a mail address`, { temporary: false })
    const ring = ringFor(parsed.address, keys)
    if (ring.keys.length === 0)
      throw new LinksecError(
        'LINKSEC_KEY_NO_UID',
        `the key has no user ID for ${parsed.address} (it has: ${addrs.join(', ') || 'no addresses'}); add one with gpg --quick-add-uid`,
        { temporary: false },
      )
    const file = keyFilePath(this.dir, addressKey(parsed), '.pgp')
    fs.mkdirSync(this.dir, { recursive: true })
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, ring.binary)
    fs.renameSync(tmp, file)
    this.invalidate()
    return { address: ring.address, file, ring }
  }

  /** Removes an address's key file; false when there was none. */
  async remove(address: string): Promise<boolean> {
    const hit = (await this.snapshot()).byAddress.get(addressKey(address))
    if (!hit) return false
    fs.rmSync(hit.file, { force: true })
    this.invalidate()
    return true
  }

  private invalidate(): void {
    this.snap = undefined
    this.checkedAt = -Infinity
  }

  private async snapshot(): Promise<Snapshot> {
    const now = this.now()
    if (this.snap && now - this.checkedAt < STAT_EVERY_MS) return this.snap
    this.checkedAt = now
    const mtimeMs = dirMtime(this.dir)
    if (this.snap && this.snap.mtimeMs === mtimeMs) return this.snap
    this.loading ??= this.load(mtimeMs).finally(() => (this.loading = undefined))
    this.snap = await this.loading
    return this.snap
  }

  private async load(mtimeMs: number): Promise<Snapshot> {
    const byAddress = new Map<string, StoredKey>()
    const files = mtimeMs < 0 ? [] : fs.readdirSync(this.dir).filter((f) => /\.(pgp|asc|gpg)$/i.test(f))
    for (const f of files.sort()) {
      const file = path.join(this.dir, f)
      try {
        const keys = await readKeyBlob(fs.readFileSync(file))
        const named = parseAddress(addressOfKeyFile(f.replace(/\.(pgp|asc|gpg)$/i, '')))
        const addrs = named ? [named.address] : keys.flatMap(keyAddresses)
        for (const a of addrs) {
          const ring = ringFor(a, keys)
          if (ring.keys.length > 0 && !byAddress.has(ring.address))
            byAddress.set(ring.address, { address: ring.address, file, ring })
        }
      } catch (e) {
        this.log?.warn('skipping unreadable key file', { file, error: describeError(e) })
      }
    }
    return { mtimeMs, byAddress }
  }
}

function dirMtime(dir: string): number {
  try {
    return fs.statSync(dir).mtimeMs
  } catch {
    return -1
  }
}

function pickOnly(addrs: string[]): string {
  if (addrs.length === 1) return addrs[0]!
  throw new LinksecError(
    'LINKSEC_KEY_ADDRESS',
    addrs.length === 0
      ? 'the key has no user ID with a mail address; it cannot be published over WKD'
      : `the key has several addresses (${addrs.join(', ')}); name one with --address`,
    { temporary: false },
  )
}

/** Characters a file name must not carry as they are: path separators, the escape itself, controls. */
const UNSAFE_IN_NAME = /[%/\\\x00-\x1f\x7f]/g
/** Most file systems allow 255 bytes per name. */
const MAX_NAME_BYTES = 255

/**
 * The file for an address in a key directory (`[keys] dir`, `[sign] keys_dir`):
 * always one path component directly inside `dir`. An address may hold `/`,
 * `..`, `\\` or `%` in a quoted local part (RFC 5322 §3.4.1); those are
 * written as %XX, so no address can name a file elsewhere. Throws when the
 * name would not fit a file system's name limit.
 */
export function keyFilePath(dir: string, address: string, suffix: string): string {
  const name = `${address.replace(UNSAFE_IN_NAME, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`)}${suffix}`
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES)
    throw new LinksecError(
      'LINKSEC_KEY_ADDRESS',
      `the address ${address.slice(0, 80)}… is too long for a key file name`,
      {
        temporary: false,
      },
    )
  const base = path.resolve(dir)
  const file = path.join(base, name)
  if (path.dirname(file) !== base || path.basename(file) !== name)
    throw new LinksecError('LINKSEC_KEY_ADDRESS', `"${address}" cannot name a key file`, { temporary: false })
  return file
}

/** The address a key file name stands for (the inverse of keyFilePath's escaping). */
export function addressOfKeyFile(stem: string): string {
  return stem.replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
}
