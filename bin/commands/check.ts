/**
 * `linksec check <domain> [--json] [--config DIR]`: what linksec believes of a
 * domain, and why — the effective level and TLS mode, the reply Postfix's
 * smtp_tls_policy_maps would get, and each source's own answer, and the
 * domain CA whose certification its senders' keys need (core/verify/ca-policy.ts).
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
import { caDeclarationFor, caPinsFor, signaturePolicyFor, type CaDeclaration } from '../../core/verify'
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

/** The domain CA line: which fingerprint counts, from where, or why a declared one does not. */
function describeCa(d: CaDeclaration & { source?: string }): { text: string; json: Record<string, unknown> } {
  if (d.kind === 'none') return { text: 'domain CA: none declared\n', json: { kind: 'none' } }
  if (d.kind === 'unknown') return { text: `domain CA: unknown (${d.reason})\n`, json: d }
  const counted = d.validated && d.source !== undefined
  const how = counted
    ? d.source === 'static'
      ? 'pinned in the static list'
      : 'from a DNSSEC-validated answer'
    : 'ignored: the answer was not DNSSEC-validated'
  return {
    text: `domain CA: ${d.fingerprint} (${how}); ${counted ? "senders' keys must carry its certification" : 'keys are not checked against it'}\n`,
    json: { kind: 'declared', fingerprint: d.fingerprint, counted, source: d.source ?? 'dns' },
  }
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
    const ca = describeCa(
      await caDeclarationFor(hop.domain, {
        lookup: signaturePolicyFor(rt),
        pins: caPinsFor(rt),
        bound: (w) => w,
      }),
    )
    const json = {
      ...policyToJson(policy, { postfix }),
      ...(own ? { own_declaration: own } : {}),
      domain_ca: ca.json,
    }
    const out = args.flags.json
      ? JSON.stringify(json, null, 2) + '\n'
      : describePolicy(policy, postfix) + ca.text + (own ? describeOwn(own) : '')
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
