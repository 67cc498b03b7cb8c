/**
 * `linksec keys add|list|remove|generate|import-secret [--config DIR]`:
 * manages the keys this server publishes over WKD (the files in `[keys]
 * dir`) and the secret keys it signs with (`[sign] secret_dir`, keys-sign.ts).
 *
 *   linksec keys add FILE [ADDRESS] [--replace]   stores the key for ADDRESS (or its only
 *                                     address); refuses a key without a user ID for it,
 *                                     and another key than the published one without --replace
 *   linksec keys list                 address, fingerprint, status, WKD hash, file, sign=yes|no
 *   linksec keys generate ADDRESS [--rsa 3072]   a signing key: secret kept, public published
 *   linksec keys import-secret FILE [ADDRESS]    an unprotected secret key (gpg --export-secret-keys)
 *   linksec keys rotate ADDRESS [--rsa 3072]     a new signing key; the old one stays
 *                                     published for [keys] rotation_overlap (keys-sign.ts)
 *   linksec keys remove ADDRESS
 *   linksec keys ca init|show|revoke [DOMAIN]    the domain CA (keys-ca.ts)
 *
 * Every key published for a domain that has a CA is certified by it first
 * (core/keys/ca.ts): `add`, `generate` and `import-secret` alike.
 */
import * as fs from 'node:fs'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'
import { generate, importSecret, rotate, rsaBits } from './keys-sign'
import { describeError, isLinksecError } from '../../core/errors'
import { caStoreFor, keyStoreFor, parseAddress, wkdHash, type CaStore, type KeyStore } from '../../core/keys'
import { readKeyBlob } from '../../core/keys/material'
import { runCa } from './keys-ca'
import { signerEntries } from '../../core/keys/material'
import type { SecretStore } from '../../core/sign/secrets'
import { secretStoreFor } from '../../core/sign/step'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'

export const USAGE =
  'usage: linksec keys add FILE [ADDRESS] [--replace] | list | remove ADDRESS | rotate ADDRESS [--rsa 3072]\n' +
  '                    | generate ADDRESS [--rsa 3072] [--replace] | import-secret FILE [ADDRESS] [--replace]\n' +
  '                    | ca init [DOMAIN] [--name NAME] [--replace] | ca show [DOMAIN]\n' +
  '                    | ca revoke [DOMAIN] [--reason compromised|superseded|retired] | ca revoke ADDRESS  [--config DIR]\n'

export const OPTIONS = {
  address: { type: 'string' },
  name: { type: 'string' },
  reason: { type: 'string' },
  replace: { type: 'boolean' },
  rsa: { type: 'string' },
} satisfies OptionTable

export async function run(args: ParsedArgs): Promise<number> {
  const [sub, ...rest] = args.positional
  const rt = createRuntime(configFromArgs(args), { metrics: createMetrics({ processMetrics: false }) })
  const store = keyStoreFor(rt)
  const secrets = secretStoreFor(rt)
  const cas = caStoreFor(rt)
  const replace = args.flags.replace === true
  try {
    if (sub === 'ca') {
      const code = await runCa(
        { config: rt.config, store, cas, now: rt.now() },
        rest[0],
        rest.slice(1),
        args.flags,
      )
      if (code !== undefined) return code
      process.stderr.write(USAGE)
      return 2
    }
    if (sub === 'add' && rest.length >= 1 && rest.length <= 2)
      return await add(store, cas, rest[0]!, addressArg(args, rest[1]), replace)
    if (sub === 'list' && rest.length === 0) return await list(store, secrets, rt.now())
    if (sub === 'rotate' && rest.length === 1)
      return await rotate(
        { store, secrets, cas },
        rest[0]!,
        rsaBits(args.flags.rsa),
        rt.config.keys.rotation_overlap * 1000,
      )
    if (sub === 'generate' && rest.length === 1)
      return await generate({ store, secrets, cas }, rest[0]!, rsaBits(args.flags.rsa), replace)
    if (sub === 'import-secret' && rest.length >= 1 && rest.length <= 2)
      return await importSecret({ store, secrets, cas }, rest[0]!, addressArg(args, rest[1]), replace)
    if (sub === 'remove' && rest.length === 1) return await remove(store, rest[0]!)
  } catch (e) {
    process.stderr.write(`linksec keys ${sub}: ${isLinksecError(e) ? e.message : describeError(e)}\n`)
    return 1
  }
  process.stderr.write(USAGE)
  return 2
}

function addressArg(args: ParsedArgs, positional: string | undefined): string | undefined {
  return typeof args.flags.address === 'string' ? args.flags.address : positional
}

async function add(
  store: KeyStore,
  cas: CaStore,
  file: string,
  address: string | undefined,
  replace: boolean,
): Promise<number> {
  const data = fs.readFileSync(file === '-' ? 0 : file)
  const k = await store.add(await certifyBlob(cas, data), address, { replace })
  const fprs = k.ring.keys.map((x) => x.getFingerprint().toUpperCase()).join(', ')
  process.stdout.write(`added ${k.address} (${fprs}) as ${k.file}\n`)
  return 0
}

async function list(store: KeyStore, secrets: SecretStore, now: number): Promise<number> {
  const keys = await store.list()
  const held = await secrets.list()
  if (keys.length === 0 && held.length === 0) process.stdout.write(`no keys in ${store.dir}\n`)
  for (const k of keys) {
    const a = parseAddress(k.address)
    const entries = await signerEntries(k.ring, new Date(now))
    for (const key of k.ring.keys) {
      const fpr = key.getFingerprint().toUpperCase()
      const mine = entries.filter((e) => e.primaryFingerprint === fpr)
      const canSign = mine.some((e) => e.status === 'valid')
      const why = mine.find((e) => e.status !== 'valid' && e.keyId === key.getKeyID().toHex().toUpperCase())
      const status = canSign ? 'valid' : (why?.status ?? 'not_signing')
      const signs = held.some((h) => h.address === k.address && h.fingerprint === fpr && !h.problem)
      const wkd = `wkd=${a ? wkdHash(a.local) : '?'}`
      const leaves = k.retiring?.get(fpr)
      const until = leaves === undefined ? '' : `\tretires=${new Date(leaves).toISOString()}`
      process.stdout.write(
        `${k.address}\t${fpr}\t${status}\t${wkd}\t${k.file}\tsign=${signs ? 'yes' : 'no'}${until}\n`,
      )
    }
  }
  // Secret keys whose public half is not published: they sign, but receivers cannot check it.
  for (const h of held.filter((h) => !keys.some((k) => k.address === h.address))) {
    const why = h.problem ? `sign=no (${h.problem})` : 'sign=yes'
    process.stdout.write(`${h.address}\t${h.fingerprint}\tnot published\t-\t${h.file}\t${why}\n`)
  }
  return 0
}

async function remove(store: KeyStore, address: string): Promise<number> {
  if (await store.remove(address)) {
    process.stdout.write(`removed ${address}\n`)
    return 0
  }
  process.stderr.write(`linksec keys remove: no key for ${address} in ${store.dir}\n`)
  return 1
}

/** The keys in `data`, each certified by the CA of its domains (unchanged where there is none). Unreadable data passes through for the store to refuse by name. */
export async function certifyBlob(cas: CaStore, data: Buffer): Promise<Buffer> {
  const keys = await readKeyBlob(data).catch(() => undefined)
  if (!keys) return data
  const certified = await Promise.all(keys.map((k) => cas.certify(k)))
  return Buffer.concat(certified.map((k) => Buffer.from(k.write())))
}
