/**
 * `linksec check <domain> [--json] [--config DIR]`: what linksec believes of a
 * domain, and why — the effective level and TLS mode, the reply Postfix's
 * smtp_tls_policy_maps would get, and each source's own answer.
 * Exit: 0 answered, 75 (EX_TEMPFAIL) a source failed and nothing valid was
 * cached, 65 (EX_DATAERR) not a domain, 2 usage.
 */
import { isLinksecError } from '../../core/errors'
import { createLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { parseNextHop, policyResolverFor } from '../../core/policy'
import { describePolicy, policyToJson } from '../../core/policy/describe'
import { createRuntime } from '../../core/runtime'
import { ownLevel, type OwnLevel } from '../../core/own-level'
import { normalizeDomain } from '../../core/policy/domain'
import { certificatePaths, certificateUsable } from '../../core/tls/store'
import { formatReply, policyReply } from '../../milter/socketmap/tls-policy'
import type { LinksecConfig } from '../../core/config'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

export const USAGE = 'usage: linksec check <domain | [host]:port> [--json] [--config DIR]\n'

/** For our own domain: what this server declares (the answer EHLO and `linksec record` give). */
function ownDeclaration(config: LinksecConfig, domain: string): OwnLevel | undefined {
  if (!config.main.domain || normalizeDomain(config.main.domain) !== domain) return undefined
  return ownLevel(config, certificateUsable(certificatePaths(config), Date.now()))
}

function describeOwn(own: OwnLevel): string {
  const what = own.declares ? `level ${own.level}` : 'no level'
  return `this server declares: ${what}${own.heldBackBy ? ` (${own.heldBackBy})` : ''}\n`
}

export const OPTIONS = { json: { type: 'boolean' } } satisfies OptionTable

export async function run(args: ParsedArgs): Promise<number> {
  const target = args.positional[0]
  if (!target || args.positional.length > 1) {
    process.stderr.write(USAGE)
    return 2
  }
  const hop = parseNextHop(target)
  if (hop.kind === 'address' || hop.kind === 'invalid') {
    const why = hop.kind === 'address' ? 'an IP address has no policy domain' : 'not a domain name'
    process.stderr.write(`linksec check: "${target}": ${why}\n${USAGE}`)
    return 65
  }
  const config = configFromArgs(args)
  const rt = createRuntime(config, {
    log: createLogger({ level: 'warn', format: 'text' }),
    metrics: createMetrics({ processMetrics: false }),
  })
  try {
    const policy = await policyResolverFor(rt).resolve(hop.domain)
    const postfix = formatReply(policyReply(policy, { tlsrpt: config.socketmap.tlsrpt }))
    const own = ownDeclaration(config, hop.domain)
    const json = { ...policyToJson(policy, { postfix }), ...(own ? { own_declaration: own } : {}) }
    const out = args.flags.json
      ? JSON.stringify(json, null, 2) + '\n'
      : describePolicy(policy, postfix) + (own ? describeOwn(own) : '')
    process.stdout.write(out)
    return policy.temporaryFailure ? 75 : 0
  } catch (e) {
    if (!isLinksecError(e) || e.code !== 'LINKSEC_BAD_DOMAIN') throw e
    process.stderr.write(`linksec check: ${e.message}\n`)
    return 65
  } finally {
    await rt.engine.close()
  }
}
