/**
 * `linksec keys generate|import-secret`: the secret keys linksec signs its
 * users' mail with (`[sign] secret_dir`), each published over WKD at once
 * (its public half goes into `[keys] dir`, as `linksec keys add` does).
 *
 *   linksec keys generate ADDRESS [--rsa 3072] [--replace]
 *       a sign-only Ed25519 key (RSA on request): no encryption subkey, so
 *       nobody encrypts to a key whose secret sits on the server
 *   linksec keys import-secret FILE [ADDRESS] [--replace]
 *       an unprotected secret key, e.g. from `gpg --export-secret-keys`
 *   linksec keys rotate ADDRESS [--rsa 3072]
 *       a new signing key that signs from now on; the old public key stays
 *       published beside it for [keys] rotation_overlap, then leaves WKD
 */
import * as fs from 'node:fs'
import * as openpgp from 'openpgp'
import { LinksecError } from '../../core/errors'
import { parseAddress, type CaStore, type KeyStore } from '../../core/keys'
import type { SecretStore } from '../../core/sign/secrets'

const RSA_BITS = new Set([2048, 3072, 4096])

export interface SignKeyStores {
  store: KeyStore
  secrets: SecretStore
  /** Certifies the public half before it is published (core/keys/ca.ts). */
  cas: CaStore
}

/** RSA bits from `--rsa [BITS]`, or undefined for Ed25519. */
export function rsaBits(flag: string | true | undefined): number | undefined {
  if (flag === undefined) return undefined
  const bits = flag === true ? 3072 : Number(flag)
  if (!RSA_BITS.has(bits))
    throw new LinksecError('LINKSEC_SIGN_ARGS', '--rsa takes 2048, 3072 or 4096', { temporary: false })
  return bits
}

export async function generate(
  s: SignKeyStores,
  address: string,
  bits: number | undefined,
  replace: boolean,
): Promise<number> {
  const a = parseAddress(address)
  if (!a)
    throw new LinksecError('LINKSEC_KEY_ADDRESS', `"${address}" is not a mail address`, { temporary: false })
  await refuseReplacing(s, a.address, undefined, replace)
  return store(s, await newSigningKey(a.address, bits), a.address, 'generated')
}

/**
 * A new key for an address that already has one: the secret is replaced (new
 * mail is signed with the new key at once), the public key is published
 * beside the old one, which stays for `overlapMs` (draft-koch-openpgp-
 * webkey-service §3.1: WKD may serve several keys for an address).
 */
export async function rotate(
  s: SignKeyStores,
  address: string,
  bits: number | undefined,
  overlapMs: number,
): Promise<number> {
  const a = parseAddress(address)
  if (!a)
    throw new LinksecError('LINKSEC_KEY_ADDRESS', `"${address}" is not a mail address`, { temporary: false })
  if (!(await s.store.lookup(a.address)))
    throw new LinksecError(
      'LINKSEC_KEY_NONE',
      `${a.address} has no published key to rotate; make one with linksec keys generate ${a.address}`,
      { temporary: false },
    )
  const saved = await s.secrets.save(await newSigningKey(a.address, bits), a.address)
  // The new key is certified by the domain CA, when there is one, like every key published.
  const certified = await s.cas.certify(saved.key.toPublic())
  const pub = await s.store.rotate(Buffer.from(certified.write()), saved.address, overlapMs)
  const fpr = saved.key.getFingerprint().toUpperCase()
  const old = [...(pub.retiring ?? [])].map(([f, t]) => `${f} until ${new Date(t).toISOString()}`)
  process.stdout.write(
    `rotated ${saved.address}: new key ${fpr} signs from now on (secret ${saved.file}); ` +
      `still published: ${old.join(', ') || 'none'}\n`,
  )
  return 0
}

/** A sign-only key: Ed25519, or RSA of `bits`; binary secret key. */
async function newSigningKey(address: string, bits: number | undefined): Promise<Buffer> {
  const { privateKey } = await openpgp.generateKey({
    ...(bits
      ? { type: 'rsa' as const, rsaBits: bits }
      : { type: 'ecc' as const, curve: 'ed25519Legacy' as const }),
    userIDs: [{ email: address }],
    subkeys: [],
    format: 'object',
  })
  return Buffer.from(privateKey.write())
}

export async function importSecret(
  s: SignKeyStores,
  file: string,
  address: string | undefined,
  replace: boolean,
): Promise<number> {
  const data = fs.readFileSync(file === '-' ? 0 : file)
  return store(s, data, address, 'imported', replace)
}

async function store(
  s: SignKeyStores,
  data: Buffer,
  address: string | undefined,
  verb: string,
  replace = true,
): Promise<number> {
  const saved = await s.secrets.save(data, address, {
    check: (a, fpr) => refuseReplacing(s, a, fpr, replace),
  })
  // refuseReplacing (above) already asked about any other key for the address.
  const pub = await s.store.add(
    Buffer.from((await s.cas.certify(saved.key.toPublic())).write()),
    saved.address,
    { replace: true },
  )
  const fpr = saved.key.getFingerprint().toUpperCase()
  process.stdout.write(`${verb} ${saved.address} (${fpr}): secret ${saved.file}, published ${pub.file}\n`)
  return 0
}

/** A published or held key for the address is never replaced silently. */
async function refuseReplacing(
  s: SignKeyStores,
  address: string,
  fpr: string | undefined,
  replace: boolean,
): Promise<void> {
  if (replace) return
  const held = (await s.secrets.list()).find((k) => k.address === address)
  const published = (await s.store.lookup(address))?.keys.map((k) => k.getFingerprint().toUpperCase()) ?? []
  const other =
    (held && held.fingerprint !== fpr ? held.fingerprint : undefined) ?? published.find((f) => f !== fpr)
  if (other)
    throw new LinksecError(
      'LINKSEC_KEY_EXISTS',
      `${address} already has the key ${other}; add --replace to replace it (receivers then need the new key from WKD)`,
      { temporary: false },
    )
}
