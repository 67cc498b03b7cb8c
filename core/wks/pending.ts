/**
 * Submissions waiting for their confirmation (draft-koch-openpgp-webkey-
 * service §4.3-4.4): one JSON file per nonce under `[wks] pending_dir`,
 * holding the address, the key's fingerprint and the key. Bounded: at most
 * `max` at once and `perAddress` per address (a flood is refused, never
 * queued), each answerable for `ttlMs`. A nonce is taken once: a replayed
 * confirmation finds nothing.
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { zbase32 } from '../keys/names'

export interface Pending {
  nonce: string
  address: string
  fingerprint: string
  /** The submitted key, binary. */
  key: Buffer
  created: number
}

export interface PendingLimits {
  max: number
  perAddress: number
  ttlMs: number
}

export type AddResult = { ok: true; nonce: string } | { ok: false; outcome: 'pending_full' | 'rate_limited' }

/** A nonce is 32 z-base-32 characters (160 random bits), as gpg-wks-server makes them. */
const NONCE = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{32}$/

interface PendingJson {
  address: string
  fingerprint: string
  key: string
  created: number
}

export class PendingStore {
  constructor(
    readonly dir: string,
    private readonly limits: PendingLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Keeps a submission; refuses when the store or the address's share is full. */
  add(p: Omit<Pending, 'nonce' | 'created'>): AddResult {
    const live = this.live()
    if (live.length >= this.limits.max) return { ok: false, outcome: 'pending_full' }
    if (live.filter((e) => e.address === p.address).length >= this.limits.perAddress)
      return { ok: false, outcome: 'rate_limited' }
    const nonce = zbase32(crypto.randomBytes(20))
    const json: PendingJson = {
      address: p.address,
      fingerprint: p.fingerprint,
      key: p.key.toString('base64'),
      created: this.now(),
    }
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    const file = path.join(this.dir, `${nonce}.json`)
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(json), { mode: 0o600 })
    fs.renameSync(`${file}.tmp`, file)
    return { ok: true, nonce }
  }

  /** The submission for a nonce, removed so it cannot be confirmed twice; undefined when unknown or expired. */
  take(nonce: string): Pending | undefined {
    if (!NONCE.test(nonce)) return undefined
    const file = path.join(this.dir, `${nonce}.json`)
    let json: PendingJson
    try {
      // Renaming first makes taking atomic: two confirmations racing get one entry.
      const taken = `${file}.taken.${process.pid}`
      fs.renameSync(file, taken)
      json = JSON.parse(fs.readFileSync(taken, 'utf8')) as PendingJson
      fs.rmSync(taken, { force: true })
    } catch {
      return undefined
    }
    if (this.now() - json.created >= this.limits.ttlMs) return undefined
    return { nonce, ...json, key: Buffer.from(json.key, 'base64') }
  }

  /** The entries still answerable; expired ones are deleted on the way. */
  private live(): PendingJson[] {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir).filter((n) => n.endsWith('.json'))
    } catch {
      return []
    }
    const out: PendingJson[] = []
    for (const n of names) {
      const file = path.join(this.dir, n)
      try {
        const json = JSON.parse(fs.readFileSync(file, 'utf8')) as PendingJson
        if (this.now() - json.created >= this.limits.ttlMs) fs.rmSync(file, { force: true })
        else out.push(json)
      } catch {
        fs.rmSync(file, { force: true })
      }
    }
    return out
  }
}
