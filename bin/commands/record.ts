/**
 * `linksec record [domain] [--sig=required|optional] [--json] [--config DIR]`:
 * the `_linksec` TXT record to publish (docs/architecture.md §6.1). The level is what this
 * configuration actually performs, never more than [main] level, and 0 when
 * this server has no usable certificate ([tls] cert_file): the same answer
 * the Haraka EHLO gives (core/own-level.ts). When it is less, stderr says why.
 * `--sig=required` is printed only when this configuration signs every
 * sender of the domain (core/sign/readiness.ts); otherwise it says why not.
 * `ca=<fingerprint>` is added when the domain has a usable domain CA
 * (`linksec keys ca init`, core/keys/ca.ts); receivers count it only from a
 * DNSSEC-signed zone, so stderr says so.
 */
import type { LinksecConfig } from '../../core/config'
import { formatTxtRecord, txtRecordName } from '../../core/levels'
import { caStoreFor, keyStoreFor, parseAddress } from '../../core/keys'
import { createMetrics } from '../../core/metrics'
import { ownLevel } from '../../core/own-level'
import { normalizeDomain } from '../../core/policy/domain'
import { notSigningAll, SIGN_CAVEAT } from '../../core/sign/readiness'
import { secretStoreFor, signerScopeFor } from '../../core/sign/step'
import { createRuntime } from '../../core/runtime'
import { certificatePaths, certificateUsable } from '../../core/tls/store'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

export const USAGE = 'usage: linksec record [domain] [--sig=required|optional] [--json] [--config DIR]\n'

export const OPTIONS = { sig: { type: 'string' }, json: { type: 'boolean' } } satisfies OptionTable

export async function run(args: ParsedArgs): Promise<number> {
  const sig = args.flags.sig ?? 'optional'
  if (sig !== 'required' && sig !== 'optional') {
    process.stderr.write(`linksec record: --sig must be required or optional\n${USAGE}`)
    return 2
  }
  const config = configFromArgs(args)
  const given = args.positional[0] ?? config.main.domain
  if (!given) {
    process.stderr.write(`linksec record: name a domain, or set [main] domain in linksec.ini\n${USAGE}`)
    return 2
  }
  const domain = normalizeDomain(given)
  if (!domain) {
    process.stderr.write(`linksec record: "${given}" is not a domain name\n`)
    return 65
  }
  if (sig === 'required') {
    const why = await whyNotRequired(config, domain)
    if (why.length) {
      process.stderr.write(
        `linksec record: not printing sig=required for ${domain}; receivers would refuse mail this configuration leaves unsigned:\n` +
          why.map((w) => `  - ${w}\n`).join('') +
          'fix these, or publish sig=optional (the default)\n',
      )
      return 1
    }
    process.stderr.write(`note: ${SIGN_CAVEAT}\n`)
  }
  const own = ownLevel(config, certificateUsable(certificatePaths(config), Date.now()))
  const level = own.level
  const ca = await domainCa(config, domain)
  const value = formatTxtRecord({
    level,
    ttlSeconds: config.main.declaration_ttl,
    signatures: sig,
    ...(ca ? { ca } : {}),
  })
  if (ca)
    process.stderr.write(
      `note: receivers count ca= only from a DNSSEC-signed zone (or their static list); sign ${domain}'s zone\n`,
    )
  const name = `${txtRecordName(domain)}.`
  if (own.heldBackBy)
    process.stderr.write(
      `note: [main] level=${config.main.level}, but this server declares level ${level}: ${own.heldBackBy}\n`,
    )
  if (args.flags.json) process.stdout.write(JSON.stringify({ name, type: 'TXT', value, level }) + '\n')
  else process.stdout.write(`${name} IN TXT "${value}"\n`)
  return 0
}

async function whyNotRequired(config: LinksecConfig, domain: string): Promise<string[]> {
  const rt = createRuntime(config, { metrics: createMetrics({ processMetrics: false }) })
  const ofDomain = (a: string) => parseAddress(a)?.domain === domain
  try {
    const published = (await keyStoreFor(rt).list()).map((k) => k.address).filter(ofDomain)
    const secrets = (await secretStoreFor(rt).list()).filter((s) => ofDomain(s.address))
    const allowed = config.sign.enabled ? signerScopeFor(rt).senders.addresses().filter(ofDomain) : []
    return notSigningAll(config, domain, { published, secrets, allowed })
  } catch (e) {
    return [`the signing setup cannot be read: ${e instanceof Error ? e.message : String(e)}`]
  }
}

/** The fingerprint of the domain's usable CA, if it has one; a revoked one is named on stderr. */
async function domainCa(config: LinksecConfig, domain: string): Promise<string | undefined> {
  const rt = createRuntime(config, { metrics: createMetrics({ processMetrics: false }) })
  const ca = await caStoreFor(rt).get(domain)
  if (!ca) return undefined
  const problem = await ca.problem(new Date(rt.now()))
  if (!problem) return ca.fingerprint
  process.stderr.write(`note: no ca= for ${domain}: ${problem} (linksec keys ca init --replace ${domain})\n`)
  return undefined
}
