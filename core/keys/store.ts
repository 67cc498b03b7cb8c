/**
 * The local key store, `[keys] dir` (default config/keys/): the keys this
 * server publishes over WKD and trusts first when verifying. One file per
 * address, `<address>.pgp`, binary, holding only that address's user ID.
 * Files named otherwise (`*.asc`, `*.pgp`) are indexed under every address
 * their keys carry. The directory is re-read when its mtime changes.
 *
 * Rotation (docs/operators.md "Rotating a key"): an address's file may hold
 * several keys, all served over WKD as one concatenation of binary keys
 * (draft-koch-openpgp-webkey-service §3.1 allows several). A key on its way
 * out is listed in `<address>.pgp.retire` (JSON: fingerprint -> ISO time);
 * until that time it stays published and valid, so mail signed and queued
 * before the rotation still verifies; after it the key is dropped from the
 * ring and the file rewritten. A key is never replaced silently: add()
 * refuses a different key for an address unless told to replace.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import type * as openpgp from 'openpgp'
import { describeError, LinksecError } from '../errors'
import type { Logger } from '../log'
import { addressKey, parseAddress, type MailAddress } from './address'
import { keyAddresses, readKeyBlob, ringFor, type KeyRing } from './material'
import { wkdHash } from './names'

export interface StoredKey {
  address: string
  file: string
  ring: KeyRing
  /** Keys being rotated out: upper-case fingerprint -> when they leave WKD (ms). */
  retiring?: ReadonlyMap<string, number>
}

interface Snapshot {
  mtimeMs: number
  byAddress: Map<string, StoredKey>
  /** The earliest retirement still ahead (ms): the snapshot is stale from then on. */
  until: number
}

export interface AddOptions {
  /** Replace a different key already published for the address (`linksec keys add --replace`). */
  replace?: boolean
}

/** The suffix of a key file's retirement list. */
const RETIRE_SUFFIX = '.retire'

const fingerprintOf = (k: openpgp.PublicKey) => k.getFingerprint().toUpperCase()

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
    const now = this.now()
    if (!this.snap || now - this.checkedAt >= STAT_EVERY_MS || now >= this.snap.until) return undefined
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
   * carry). Refuses keys without a user ID for the address, and a key other
   * than the one already published unless `replace` (then the old ones go).
   * The same key again is an update (new signatures, a revocation).
   */
  async add(data: Buffer, address?: string, opts: AddOptions = {}): Promise<StoredKey> {
    const { parsed, ring } = await this.ringToAdd(data, address)
    const existing = (await this.snapshot()).byAddress.get(addressKey(parsed))
    const fresh = new Set(ring.keys.map(fingerprintOf))
    const other = existing?.ring.keys.map(fingerprintOf).find((f) => !fresh.has(f))
    if (other && !opts.replace)
      throw new LinksecError(
        'LINKSEC_KEY_EXISTS',
        `${ring.address} already has the key ${other}; add --replace to replace it, or run linksec keys rotate ${ring.address} to publish a new key beside it for a while`,
        { temporary: false },
      )
    // Keys that stay (an update of one being rotated out) keep their retirement.
    const keep = opts.replace ? [] : (existing?.ring.keys ?? []).filter((k) => !fresh.has(fingerprintOf(k)))
    const retiring = opts.replace ? new Map<string, number>() : new Map(existing?.retiring ?? [])
    return this.write(parsed.address, [...keep, ...ring.keys], retiring)
  }

  /**
   * Publishes `data` beside the address's current keys, which stay published
   * (and valid) for `overlapMs` more and are then dropped. Returns what was
   * stored; its `retiring` says when each old key leaves.
   */
  async rotate(data: Buffer, address: string, overlapMs: number): Promise<StoredKey> {
    const { parsed, ring } = await this.ringToAdd(data, address)
    const existing = (await this.snapshot()).byAddress.get(addressKey(parsed))
    if (!existing)
      throw new LinksecError(
        'LINKSEC_KEY_NONE',
        `${parsed.address} has no published key to rotate; publish one first (linksec keys generate or keys add)`,
        { temporary: false },
      )
    const fresh = new Set(ring.keys.map(fingerprintOf))
    const old = existing.ring.keys.filter((k) => !fresh.has(fingerprintOf(k)))
    const retiring = new Map(existing.retiring ?? [])
    const until = this.now() + overlapMs
    // A key already on its way out keeps the earlier of the two times.
    for (const k of old)
      retiring.set(fingerprintOf(k), Math.min(retiring.get(fingerprintOf(k)) ?? until, until))
    return this.write(parsed.address, [...old, ...ring.keys], retiring)
  }

  private async ringToAdd(data: Buffer, address?: string): Promise<{ parsed: MailAddress; ring: KeyRing }> {
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
    return { parsed, ring }
  }

  /** Writes the address's file (and its retirement list) atomically. */
  private write(address: string, keys: openpgp.PublicKey[], retiring: Map<string, number>): StoredKey {
    const ring = ringFor(address, keys)
    const file = keyFilePath(this.dir, addressKey(address), '.pgp')
    fs.mkdirSync(this.dir, { recursive: true })
    const present = new Set(ring.keys.map(fingerprintOf))
    for (const f of [...retiring.keys()]) if (!present.has(f)) retiring.delete(f)
    writeRetirements(file, retiring)
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, ring.binary)
    fs.renameSync(tmp, file)
    this.invalidate()
    return { address: ring.address, file, ring, retiring }
  }

  /** Removes an address's key file; false when there was none. */
  async remove(address: string): Promise<boolean> {
    const hit = (await this.snapshot()).byAddress.get(addressKey(address))
    if (!hit) return false
    fs.rmSync(hit.file, { force: true })
    fs.rmSync(hit.file + RETIRE_SUFFIX, { force: true })
    this.invalidate()
    return true
  }

  private invalidate(): void {
    this.snap = undefined
    this.checkedAt = -Infinity
  }

  private async snapshot(): Promise<Snapshot> {
    const now = this.now()
    const due = this.snap !== undefined && now >= this.snap.until
    if (this.snap && !due && now - this.checkedAt < STAT_EVERY_MS) return this.snap
    this.checkedAt = now
    const mtimeMs = dirMtime(this.dir)
    if (this.snap && !due && this.snap.mtimeMs === mtimeMs) return this.snap
    this.loading ??= this.load(mtimeMs).finally(() => (this.loading = undefined))
    this.snap = await this.loading
    return this.snap
  }

  private async load(mtimeMs: number): Promise<Snapshot> {
    const byAddress = new Map<string, StoredKey>()
    const now = this.now()
    let until = Infinity
    const files = mtimeMs < 0 ? [] : fs.readdirSync(this.dir).filter((f) => /\.(pgp|asc|gpg)$/i.test(f))
    for (const f of files.sort()) {
      const file = path.join(this.dir, f)
      try {
        const { keys, retiring } = this.current(file, await readKeyBlob(fs.readFileSync(file)), now)
        for (const t of retiring.values()) until = Math.min(until, t)
        const named = parseAddress(addressOfKeyFile(f.replace(/\.(pgp|asc|gpg)$/i, '')))
        const addrs = named ? [named.address] : keys.flatMap(keyAddresses)
        for (const a of addrs) {
          const ring = ringFor(a, keys)
          if (ring.keys.length > 0 && !byAddress.has(ring.address))
            byAddress.set(ring.address, { address: ring.address, file, ring, retiring })
        }
      } catch (e) {
        this.log?.warn('skipping unreadable key file', { file, error: describeError(e) })
      }
    }
    return { mtimeMs, byAddress, until }
  }

  /** A file's keys without those whose overlap has ended; the file is rewritten without them. */
  private current(
    file: string,
    keys: openpgp.PublicKey[],
    now: number,
  ): { keys: openpgp.PublicKey[]; retiring: Map<string, number> } {
    const retiring = readRetirements(file)
    const gone = new Set([...retiring].filter(([, t]) => t <= now).map(([f]) => f))
    if (gone.size === 0) return { keys, retiring }
    const kept = keys.filter((k) => !gone.has(fingerprintOf(k)))
    for (const f of gone) retiring.delete(f)
    this.log?.info('rotated-out keys removed from WKD', { file, fingerprints: [...gone] })
    try {
      const tmp = `${file}.${process.pid}.tmp`
      fs.writeFileSync(tmp, Buffer.concat(kept.map((k) => Buffer.from(k.write()))))
      fs.renameSync(tmp, file)
      writeRetirements(file, retiring)
    } catch (e) {
      // A read-only directory still serves without them; the file keeps them until it can be written.
      this.log?.warn('could not rewrite a key file after rotation', { file, error: describeError(e) })
    }
    return { keys: kept, retiring }
  }
}

/** The retirement list beside a key file: fingerprint -> ms; empty when there is none. */
function readRetirements(file: string): Map<string, number> {
  let text: string
  try {
    text = fs.readFileSync(file + RETIRE_SUFFIX, 'utf8')
  } catch {
    return new Map()
  }
  const out = new Map<string, number>()
  const json = JSON.parse(text) as Record<string, unknown>
  for (const [fpr, when] of Object.entries(json)) {
    const t = typeof when === 'string' ? Date.parse(when) : NaN
    if (/^[0-9A-F]{40,64}$/.test(fpr) && Number.isFinite(t)) out.set(fpr, t)
  }
  return out
}

function writeRetirements(file: string, retiring: ReadonlyMap<string, number>): void {
  const side = file + RETIRE_SUFFIX
  if (retiring.size === 0) {
    fs.rmSync(side, { force: true })
    return
  }
  const json = Object.fromEntries([...retiring].map(([f, t]) => [f, new Date(t).toISOString()]))
  const tmp = `${side}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(json, null, 2) + '\n')
  fs.renameSync(tmp, side)
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
