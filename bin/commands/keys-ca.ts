/**
 * `linksec keys ca init|show|revoke [DOMAIN]`: the domain CA (core/keys/ca.ts),
 * one per domain, DOMAIN defaulting to [main] domain.
 *
 *   linksec keys ca init [DOMAIN] [--name NAME] [--replace]
 *       makes the CA key (user ID "OpenPGP CA <openpgp-ca@DOMAIN>"), keeps its
 *       secret under [sign] secret_dir/ca/, publishes the public key over WKD
 *       at openpgp-ca@DOMAIN and certifies the keys already published for DOMAIN
 *   linksec keys ca show [DOMAIN]
 *       fingerprint, status, files, how many published keys it certifies, the ca= tag
 *   linksec keys ca revoke [DOMAIN] [--reason compromised|superseded|retired]
 *       revokes the CA key and publishes the revocation; receivers honouring
 *       ca= then accept none of the domain's keys until a new CA is declared
 *   linksec keys ca revoke ADDRESS
 *       withdraws the CA's certification of ADDRESS's published keys (a
 *       certification revocation, published with them): receivers honouring
 *       ca= stop accepting them for ADDRESS (a user who left, a lost key)
 */
import * as openpgp from 'openpgp'
import type { LinksecConfig } from '../../core/config'
import { LinksecError } from '../../core/errors'
import {
  caAddress,
  checkCertification,
  parseAddress,
  type CaStore,
  type DomainCa,
  type KeyStore,
} from '../../core/keys'
import { keyFilePath } from '../../core/keys/store'
import { normalizeDomain } from '../../core/policy/domain'

export interface CaDeps {
  config: LinksecConfig
  store: KeyStore
  cas: CaStore
  now: number
}

const REASONS = ['compromised', 'superseded', 'retired'] as const

export async function runCa(
  deps: CaDeps,
  sub: string | undefined,
  rest: string[],
  flags: Record<string, string | true>,
): Promise<number | undefined> {
  if (rest.length > 1) return undefined
  if (sub === 'init') return init(deps, domainArg(deps.config, rest[0]), flags)
  if (sub === 'show') return show(deps, domainArg(deps.config, rest[0]))
  if (sub === 'revoke' && rest[0]?.includes('@')) return withdraw(deps, rest[0])
  if (sub === 'revoke') return revoke(deps, domainArg(deps.config, rest[0]), flags.reason)
  return undefined
}

function domainArg(config: LinksecConfig, given: string | undefined): string {
  const raw = given ?? config.main.domain
  if (!raw)
    throw new LinksecError('LINKSEC_CA_DOMAIN', 'name a domain, or set [main] domain in linksec.ini', {
      temporary: false,
    })
  const d = normalizeDomain(raw)
  if (!d) throw new LinksecError('LINKSEC_CA_DOMAIN', `"${raw}" is not a domain name`, { temporary: false })
  return d
}

async function init(deps: CaDeps, domain: string, flags: Record<string, string | true>): Promise<number> {
  const name = typeof flags.name === 'string' ? flags.name : undefined
  const ca = await deps.cas.init(domain, { name, replace: flags.replace === true })
  const pub = await publishCa(deps.store, ca)
  process.stdout.write(
    `domain CA for ${domain}: ${ca.fingerprint}\n  secret ${ca.file}\n  published ${pub} (WKD, ${ca.address})\n`,
  )
  const { certified, skipped } = await certifyPublished(deps, ca)
  for (const s of skipped) process.stderr.write(`note: not certified: ${s}\n`)
  process.stdout.write(`  certified ${certified} published key(s) of ${domain}\n`)
  process.stdout.write(
    `publish ca=${ca.fingerprint} in _linksec.${domain} TXT (linksec record ${domain} prints the record)\n`,
  )
  return 0
}

async function show(deps: CaDeps, domain: string): Promise<number> {
  const ca = await deps.cas.get(domain)
  if (!ca) {
    process.stderr.write(
      `linksec keys ca show: no domain CA for ${domain}; run linksec keys ca init ${domain}\n`,
    )
    return 1
  }
  const date = new Date(deps.now)
  const problem = await ca.problem(date)
  const published = (await deps.store.lookup(ca.address))?.keys ?? []
  const live = published.find((k) => k.getFingerprint() === ca.key.getFingerprint())
  let certified = 0
  let total = 0
  for (const k of await deps.store.list()) {
    if (parseAddress(k.address)?.domain !== domain || k.address === ca.address) continue
    for (const key of k.ring.keys) {
      total++
      if ((await checkCertification(key, k.address, ca.key, date)).valid) certified++
    }
  }
  const out = [
    `domain:      ${domain}`,
    `fingerprint: ${ca.fingerprint}`,
    `user ID:     ${ca.key.users.map((u) => u.userID?.userID).join(', ')}`,
    `created:     ${ca.key.getCreationTime().toISOString()}`,
    `status:      ${problem ?? 'valid'}`,
    `secret:      ${ca.file}`,
    `published:   ${live ? `yes (WKD, ${ca.address})` : `no — run linksec keys ca init --replace ${domain}, or keys add the CA key`}`,
    `certifies:   ${certified} of ${total} published key(s) of ${domain}`,
    problem
      ? `record:      declare no ca= for ${domain} until a new CA is made`
      : `record:      ca=${ca.fingerprint}`,
  ]
  process.stdout.write(out.join('\n') + '\n')
  return 0
}

async function revoke(deps: CaDeps, domain: string, reason: string | true | undefined): Promise<number> {
  const why = reason === undefined ? 'retired' : reason
  if (typeof why !== 'string' || !(REASONS as readonly string[]).includes(why))
    throw new LinksecError('LINKSEC_CA_ARGS', `--reason takes ${REASONS.join(', ')}`, { temporary: false })
  const ca = await deps.cas.revoke(domain, why as (typeof REASONS)[number])
  const pub = await publishCa(deps.store, ca)
  process.stdout.write(
    `revoked the domain CA of ${domain} (${ca.fingerprint}, ${why}); the revocation is published as ${pub}\n` +
      `remove ca= from _linksec.${domain} now; linksec keys ca init --replace ${domain} makes a new CA\n`,
  )
  return 0
}

async function withdraw(deps: CaDeps, address: string): Promise<number> {
  const a = parseAddress(address)
  if (!a)
    throw new LinksecError('LINKSEC_KEY_ADDRESS', `"${address}" is not a mail address`, { temporary: false })
  const ca = await deps.cas.get(a.domain)
  if (!ca)
    throw new LinksecError('LINKSEC_CA_NONE', `no domain CA for ${a.domain}; nothing to withdraw`, {
      temporary: false,
    })
  const ring = await deps.store.lookup(a.address)
  if (!ring || ring.keys.length === 0)
    throw new LinksecError('LINKSEC_KEY_NONE', `no published key for ${a.address} in ${deps.store.dir}`, {
      temporary: false,
    })
  // A withdrawal must postdate the certification it withdraws (whole
  // seconds, DomainCa.withdrawalTime); wait for that second rather than
  // publish a signature dated in the future.
  const date = new Date(
    Math.max(
      deps.now,
      ...ring.keys.map((k) => ca.withdrawalTime(k, a.address, new Date(deps.now)).getTime()),
    ),
  )
  const wait = date.getTime() - Date.now()
  if (wait > 0 && wait <= 1000) await new Promise((resolve) => setTimeout(resolve, wait))
  const keys = await Promise.all(
    ring.keys.map((k) => ca.revokeCertification(k, a.address, 'withdrawn by the domain CA', date)),
  )
  const stored = await deps.store.add(Buffer.concat(keys.map((k) => Buffer.from(k.write()))), a.address)
  const fprs = keys.map((k) => k.getFingerprint().toUpperCase()).join(', ')
  process.stdout.write(
    `withdrew the domain CA's certification of ${a.address} (${fprs}); published as ${stored.file}\n` +
      `receivers honouring ca= refuse these keys for ${a.address} from now on; publish a new key with linksec keys add or keys generate --replace\n`,
  )
  return 0
}

/** Publishes the CA's public key (with any revocation) over WKD at openpgp-ca@DOMAIN. */
export async function publishCa(store: KeyStore, ca: DomainCa): Promise<string> {
  return (await store.add(Buffer.from(ca.publicKey().write()), caAddress(ca.domain))).file
}

/**
 * Certifies every key published for the CA's domain that is kept in its own
 * `<address>.pgp` file (a key file holding several addresses is left as it is,
 * and named, so the operator can `keys add` it again).
 */
async function certifyPublished(
  deps: CaDeps,
  ca: DomainCa,
): Promise<{ certified: number; skipped: string[] }> {
  let certified = 0
  const skipped: string[] = []
  for (const k of await deps.store.list()) {
    if (parseAddress(k.address)?.domain !== ca.domain || k.address === ca.address) continue
    if (k.file !== keyFilePath(deps.store.dir, k.address, '.pgp')) {
      skipped.push(`${k.address} (in ${k.file}; run linksec keys add ${k.file} ${k.address})`)
      continue
    }
    const keys = await Promise.all(k.ring.keys.map((key) => ca.certify(key, new Date(deps.now))))
    await deps.store.add(
      Buffer.concat(keys.map((key: openpgp.PublicKey) => Buffer.from(key.write()))),
      k.address,
    )
    certified += keys.length
  }
  return { certified, skipped }
}
