/**
 * The domain CA: one certification-only OpenPGP key per domain whose
 * certifications say "this key belongs to this address of ours". It follows
 * the OpenPGP CA convention (https://openpgp-ca.org, docs/architecture.md §6.7),
 * so a domain that already runs OpenPGP CA can declare that CA instead:
 *
 * - the CA key has one user ID, `OpenPGP CA <openpgp-ca@DOMAIN>`; its
 *   self-signature (a positive certification, RFC 9580 §5.2.1.7) carries the
 *   key flag "certify" only and the notation
 *   `openpgp-ca@notations.sequoia-pgp.org = domain=DOMAIN`;
 * - a user's key is certified per user ID: a generic certification (0x10,
 *   RFC 9580 §5.2.1.4) by the CA's primary key over the user ID and the
 *   user's primary key, for user IDs of the CA's domain only;
 * - the CA's public key is published over WKD at its own address.
 *
 * openpgp.js refuses to certify or to check certifications with a key that
 * lacks the "sign data" flag (it looks for a signing key), and the CA key
 * must not carry that flag, so certifications are made and checked here on
 * openpgp.js's signature packets directly.
 *
 * The secret half lives under `[sign] secret_dir`/ca/DOMAIN.key, the
 * directory 0700 and the file 0600, refused when others may read it (as
 * the signing secrets are, core/sign/secrets.ts).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as openpgp from 'openpgp'
import { describeError, LinksecError } from '../errors'
import { exposure, readSecretKey } from '../sign/secrets'
import { addressKey, parseAddress } from './address'
import { userIdAddress } from './material'

export const CA_LOCAL_PART = 'openpgp-ca'
/** The notation OpenPGP CA writes on its CA key's user ID self-signature: `domain=<domain>`. */
export const CA_NOTATION = 'openpgp-ca@notations.sequoia-pgp.org'
/** The subdirectory of `[sign] secret_dir` holding CA secrets. */
export const CA_SUBDIR = 'ca'
/** How far ahead of the clock a CA's signature may be dated and still count. */
const CLOCK_SKEW_MS = 60_000
const SUFFIX = '.key'
const REVOKED_SUFFIX = '.revoked'
const CERTIFICATION_TYPES: ReadonlySet<number> = new Set([
  openpgp.enums.signature.certGeneric,
  openpgp.enums.signature.certPersona,
  openpgp.enums.signature.certCasual,
  openpgp.enums.signature.certPositive,
])

const caError = (code: string, msg: string) => new LinksecError(code, msg, { temporary: false })

/** `openpgp-ca@<domain>`. */
export function caAddress(domain: string): string {
  return `${CA_LOCAL_PART}@${domain.toLowerCase().replace(/\.$/, '')}`
}

/** Upper-case hex fingerprint of a key. */
export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase()
}

/** A 40-hex (v4) or 64-hex (v6) fingerprint, spaces allowed; undefined when it is none. */
export function normalizeFingerprint(text: string): string | undefined {
  const f = text.replace(/\s+/g, '').toUpperCase()
  return /^([0-9A-F]{40}|[0-9A-F]{64})$/.test(f) ? f : undefined
}

/**
 * A new CA key for `domain`: Ed25519 (v4 packets, which every OpenPGP
 * implementation reads), certification only, no subkeys, no expiry.
 */
export async function createCaKey(
  domain: string,
  opts: { name?: string; date?: Date } = {},
): Promise<openpgp.PrivateKey> {
  const email = caAddress(domain)
  const date = opts.date ?? new Date()
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: opts.name ?? 'OpenPGP CA', email }],
    subkeys: [],
    date,
    format: 'object',
  })
  // openpgp.js flags a primary key "certify and sign"; a CA only certifies,
  // so the user ID's self-signature is made again with the certify flag alone.
  const user = privateKey.users[0]!
  const old = user.selfCertifications[0]!
  const sig = new openpgp.SignaturePacket()
  sig.signatureType = openpgp.enums.signature.certPositive
  sig.publicKeyAlgorithm = privateKey.keyPacket.algorithm
  sig.hashAlgorithm = openpgp.enums.hash.sha512
  sig.keyFlags = new Uint8Array([openpgp.enums.keyFlags.certifyKeys])
  sig.preferredSymmetricAlgorithms = old.preferredSymmetricAlgorithms
  sig.preferredHashAlgorithms = old.preferredHashAlgorithms
  sig.preferredCompressionAlgorithms = old.preferredCompressionAlgorithms
  sig.features = old.features
  sig.isPrimaryUserID = true
  sig.rawNotations = [
    {
      name: CA_NOTATION,
      value: new TextEncoder().encode(`domain=${domain.toLowerCase()}`),
      humanReadable: true,
      critical: false,
    },
  ]
  await signPacket(
    sig,
    privateKey.keyPacket as openpgp.SecretKeyPacket,
    { userID: user.userID, key: privateKey.keyPacket },
    date,
  )
  user.selfCertifications = [sig]
  return privateKey
}

/** Signs `sig` over `data` (openpgp.js's dataToSign shapes) with a decrypted secret key packet. */
async function signPacket(
  sig: openpgp.SignaturePacket,
  key: openpgp.SecretKeyPacket,
  data: object,
  date: Date,
): Promise<void> {
  // The typings say Uint8Array; the packet takes openpgp.js's { userID, key } shape for certifications.
  const sign = sig.sign.bind(sig) as (
    k: openpgp.SecretKeyPacket,
    d: object,
    date: Date,
    detached: boolean,
    config: openpgp.Config,
  ) => Promise<void>
  await sign(key, data, date, false, openpgp.config)
}

/** A copy of `key` over the same packets, so certifying it leaves the caller's key alone. */
function cloneKey<K extends openpgp.Key>(key: K): K {
  const packets = key.toPacketList()
  return (key.isPrivate() ? new openpgp.PrivateKey(packets) : new openpgp.PublicKey(packets)) as K
}

/** Why `ca` cannot certify (or vouch) at `date`: revoked, expired, not a certification key. */
export async function caKeyProblem(ca: openpgp.Key, date: Date): Promise<string | undefined> {
  if (await ca.isRevoked(undefined, undefined, date).catch(() => false)) return 'the domain CA key is revoked'
  try {
    await ca.verifyPrimaryKey(date)
  } catch (e) {
    return `the domain CA key is not valid (${describeError(e).replace(/^Error: /, '')})`
  }
  const primary = await ca.getPrimaryUser(date).catch(() => undefined)
  const flags = primary?.selfCertification.keyFlags
  if (flags && flags.length > 0 && (flags[0]! & openpgp.enums.keyFlags.certifyKeys) === 0)
    return 'the domain CA key may not certify (its key flags lack "certify")'
  return undefined
}

export type CertificationCheck =
  | { valid: true; created: Date }
  | {
      valid: false
      /** Words for the Authentication-Results reason. */
      reason: string
    }

/**
 * Whether `key`'s user ID for `address` carries a valid certification by
 * `ca` at `date`: made by the CA's primary key over this user ID and this
 * primary key, not expired, not revoked by the CA, the CA key itself valid.
 */
export async function checkCertification(
  key: openpgp.Key,
  address: string,
  ca: openpgp.Key,
  date: Date,
): Promise<CertificationCheck> {
  const problem = await caKeyProblem(ca, date)
  if (problem) return { valid: false, reason: `key not certified by the domain CA (${problem})` }
  const want = addressKey(address)
  const caFpr = ca.getFingerprint()
  const caKeyId = ca.getKeyID()
  let seen = false
  for (const user of key.users) {
    if (!user.userID || userIdAddress(user) !== want) continue
    for (const sig of user.otherCertifications) {
      if (sig.signatureType === null || !CERTIFICATION_TYPES.has(sig.signatureType)) continue
      const byFpr = sig.issuerFingerprint ? toHex(sig.issuerFingerprint) === caFpr : false
      if (!byFpr && !sig.issuerKeyID.equals(caKeyId)) continue
      seen = true
      try {
        // Checks the hash, the signature and its expiry at `date` (RFC 9580 §5.2.3.18).
        await sig.verify(
          ca.keyPacket,
          sig.signatureType,
          { userID: user.userID, key: key.keyPacket },
          date,
          false,
          openpgp.config,
        )
        // Clock skew: a certification, and a withdrawal of it, dated up to a
        // minute ahead counts (a withdrawal is dated after the certification
        // it withdraws, so may be a second ahead: DomainCa.withdrawalTime).
        const skewed = new Date(date.getTime() + CLOCK_SKEW_MS)
        if (sig.created && sig.created.getTime() > skewed.getTime()) continue
        if (await user.isRevoked(sig, ca.keyPacket, skewed).catch(() => false)) continue
        return { valid: true, created: sig.created ?? date }
      } catch {
        // A bad or expired certification counts as none; the next may hold.
      }
    }
  }
  return {
    valid: false,
    reason: seen
      ? 'key not certified by the domain CA (its certification is invalid, expired or revoked)'
      : 'key not certified by the domain CA',
  }
}

function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').toUpperCase()
}

/** One domain's CA: its secret key and the file it is kept in. */
export class DomainCa {
  constructor(
    readonly domain: string,
    readonly key: openpgp.PrivateKey,
    readonly file: string,
  ) {}

  get address(): string {
    return caAddress(this.domain)
  }

  get fingerprint(): string {
    return fingerprintOf(this.key)
  }

  /** The public CA key (what WKD serves at openpgp-ca@DOMAIN). */
  publicKey(): openpgp.PublicKey {
    return this.key.toPublic()
  }

  /** Why it cannot certify now, or undefined. */
  problem(date: Date): Promise<string | undefined> {
    return caKeyProblem(this.key, date)
  }

  /**
   * `key` with a CA certification on each user ID of this CA's domain that
   * has a valid self-signature and no valid certification by this CA yet
   * (so certifying twice adds nothing). Other user IDs are left alone.
   * Throws when the CA cannot certify (revoked, expired). `lifetimeSeconds`
   * makes certifications that expire (OpenPGP CA's certification duration).
   */
  async certify<K extends openpgp.Key>(
    key: K,
    date: Date = new Date(),
    lifetimeSeconds?: number,
  ): Promise<K> {
    const problem = await this.problem(date)
    if (problem)
      throw caError('LINKSEC_CA_UNUSABLE', `${problem}; run linksec keys ca init --replace ${this.domain}`)
    if (key.getFingerprint() === this.key.getFingerprint()) return key
    const copy = cloneKey(key)
    for (const user of copy.users) {
      const address = userIdAddress(user)
      if (!user.userID || !address || parseAddress(address)?.domain !== this.domain) continue
      if (
        !(await user.verify(date).then(
          () => true,
          () => false,
        ))
      )
        continue
      if ((await checkCertification(copy, address, this.key, date)).valid) continue
      const sig = new openpgp.SignaturePacket()
      sig.signatureType = openpgp.enums.signature.certGeneric
      sig.publicKeyAlgorithm = this.key.keyPacket.algorithm
      sig.hashAlgorithm = openpgp.enums.hash.sha512
      if (lifetimeSeconds !== undefined) {
        sig.signatureExpirationTime = lifetimeSeconds
        sig.signatureNeverExpires = false
      }
      await signPacket(
        sig,
        this.key.keyPacket as openpgp.SecretKeyPacket,
        { userID: user.userID, key: copy.keyPacket },
        date,
      )
      user.otherCertifications.push(sig)
    }
    return copy
  }

  /**
   * When a withdrawal of this CA's certifications of `address` on `key` may
   * be dated: `date`, or one second after the newest of those certifications
   * if that is later. OpenPGP times are whole seconds, and a revocation in
   * the same second as the certification it withdraws is ambiguous: sq-wot
   * (Sequoia) then still authenticates the binding.
   */
  withdrawalTime(key: openpgp.Key, address: string, date: Date): Date {
    const want = addressKey(address)
    const caKeyId = this.key.getKeyID()
    let newest = -Infinity
    for (const user of key.users) {
      if (!user.userID || userIdAddress(user) !== want) continue
      for (const sig of user.otherCertifications)
        if (sig.created && sig.issuerKeyID.equals(caKeyId)) newest = Math.max(newest, sig.created.getTime())
    }
    const after = Math.floor(newest / 1000) * 1000 + 1000
    return date.getTime() >= after ? date : new Date(after)
  }

  /**
   * `key` with this CA's certifications of `address` revoked (a certification
   * revocation, 0x30, RFC 9580 §5.2.1.14): receivers that honour `ca=` stop
   * accepting the key for that address.
   */
  async revokeCertification<K extends openpgp.Key>(
    key: K,
    address: string,
    reason = "no longer this address's key",
    date: Date = new Date(),
  ): Promise<K> {
    const copy = cloneKey(key)
    const want = addressKey(address)
    date = this.withdrawalTime(key, address, date)
    let done = false
    for (const user of copy.users) {
      if (!user.userID || userIdAddress(user) !== want) continue
      const sig = new openpgp.SignaturePacket()
      sig.signatureType = openpgp.enums.signature.certRevocation
      sig.publicKeyAlgorithm = this.key.keyPacket.algorithm
      sig.hashAlgorithm = openpgp.enums.hash.sha512
      sig.reasonForRevocationFlag = openpgp.enums.reasonForRevocation.userIDInvalid
      sig.reasonForRevocationString = reason
      await signPacket(
        sig,
        this.key.keyPacket as openpgp.SecretKeyPacket,
        { userID: user.userID, key: copy.keyPacket },
        date,
      )
      user.revocationSignatures.push(sig)
      done = true
    }
    if (!done) throw caError('LINKSEC_KEY_NO_UID', `the key has no user ID for ${want}`)
    return copy
  }
}

export type CaRevocationReason = 'compromised' | 'superseded' | 'retired'

/**
 * The CA secrets of this server, one per domain, under `dir`
 * (`[sign] secret_dir`/ca). Read from disk on each call: CA operations are
 * rare (key management, Web Key Service publication), never per message.
 */
export class CaStore {
  constructor(
    readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {}

  fileFor(domain: string): string {
    const d = domain.toLowerCase().replace(/\.$/, '')
    if (!/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/.test(d))
      throw caError('LINKSEC_CA_DOMAIN', `"${domain}" is not a domain name`)
    return path.join(this.dir, `${d}${SUFFIX}`)
  }

  /** The CA of `domain`, or undefined when none was made. Throws when its file is readable by others. */
  async get(domain: string): Promise<DomainCa | undefined> {
    const file = this.fileFor(domain)
    let st: fs.Stats
    try {
      st = fs.statSync(file)
    } catch {
      return undefined
    }
    const bad = exposure(this.dir, fs.statSync(this.dir)) ?? exposure(file, st)
    if (bad) throw caError('LINKSEC_CA_SECRET_MODE', `the domain CA secret: ${bad}`)
    const key = await readSecretKey(fs.readFileSync(file))
    return new DomainCa(path.basename(file, SUFFIX), key, file)
  }

  /** Every CA held, by domain. */
  async list(): Promise<DomainCa[]> {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      return []
    }
    const out: DomainCa[] = []
    for (const n of names.filter((n) => n.endsWith(SUFFIX)).sort()) {
      const ca = await this.get(n.slice(0, -SUFFIX.length))
      if (ca) out.push(ca)
    }
    return out
  }

  /**
   * Makes the CA of `domain`. Refuses when one exists, unless `replace`
   * (then the old secret is kept beside it as DOMAIN.key.revoked-… if it
   * was revoked, or DOMAIN.key.old-… if not).
   */
  async init(domain: string, opts: { name?: string; replace?: boolean } = {}): Promise<DomainCa> {
    const file = this.fileFor(domain)
    const old = await this.get(domain)
    const date = new Date(this.now())
    if (old && !opts.replace)
      throw caError(
        'LINKSEC_CA_EXISTS',
        `${path.basename(file, SUFFIX)} already has a domain CA (${old.fingerprint}); ` +
          `add --replace to make a new one (then publish the new ca= fingerprint, and certify the keys again)`,
      )
    const key = await createCaKey(path.basename(file, SUFFIX), { name: opts.name, date })
    this.ensureDir()
    if (old) {
      const revoked = (await old.problem(date)) !== undefined
      fs.renameSync(file, `${file}${revoked ? REVOKED_SUFFIX : '.old'}-${date.getTime()}`)
    }
    this.write(file, key)
    return new DomainCa(path.basename(file, SUFFIX), key, file)
  }

  /** Revokes the CA key of `domain` (a key revocation, RFC 9580 §5.2.1.11) and keeps the revoked key. */
  async revoke(domain: string, reason: CaRevocationReason, text = ''): Promise<DomainCa> {
    const ca = await this.get(domain)
    if (!ca)
      throw caError(
        'LINKSEC_CA_NONE',
        `no domain CA for ${domain} in ${this.dir}; run linksec keys ca init ${domain}`,
      )
    const flag = {
      compromised: openpgp.enums.reasonForRevocation.keyCompromised,
      superseded: openpgp.enums.reasonForRevocation.keySuperseded,
      retired: openpgp.enums.reasonForRevocation.keyRetired,
    }[reason]
    const { privateKey } = await openpgp.revokeKey({
      key: ca.key,
      reasonForRevocation: { flag, string: text },
      date: new Date(this.now()),
      format: 'object',
    })
    this.write(ca.file, privateKey)
    return new DomainCa(ca.domain, privateKey, ca.file)
  }

  /**
   * `key` certified by the CA of each domain its user IDs are in (a domain
   * without a CA, or whose CA is revoked, certifies nothing). This is what
   * every publication of a key for one of our domains goes through.
   */
  async certify<K extends openpgp.Key>(key: K): Promise<K> {
    const domains = new Set(
      key.users.map((u) => parseAddress(userIdAddress(u) ?? '')?.domain).filter((d): d is string => !!d),
    )
    const date = new Date(this.now())
    let out = key
    for (const d of domains) {
      const ca = await this.get(d).catch(() => undefined)
      if (!ca || (await ca.problem(date))) continue
      out = await ca.certify(out, date)
    }
    return out
  }

  /** Start-up check, as for the signing secrets: throws naming a CA file (or the directory) others can read. */
  assertPrivate(): void {
    if (!fs.existsSync(this.dir)) return
    const problem =
      exposure(this.dir, fs.statSync(this.dir)) ??
      fs
        .readdirSync(this.dir)
        .map((n) => path.join(this.dir, n))
        .map((f) => exposure(f, fs.statSync(f)))
        .find(Boolean)
    if (problem) throw caError('LINKSEC_CA_SECRET_MODE', `[sign] secret_dir: ${problem}`)
  }

  private ensureDir(): void {
    const parent = path.dirname(this.dir)
    fs.mkdirSync(parent, { recursive: true, mode: 0o700 })
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    fs.chmodSync(this.dir, 0o700)
  }

  private write(file: string, key: openpgp.PrivateKey): void {
    this.ensureDir()
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, key.write(), { mode: 0o600 })
    fs.renameSync(tmp, file)
  }
}
