/**
 * One resolver answers, for a domain: the effective level, the TLS mode to
 * require, the MX patterns, and which source said so (combine.ts has the
 * rule). The network sources (DANE, MTA-STS, `_linksec` TXT) are looked up
 * together, cached in a bounded LRU and deduplicated while in flight; the
 * static list and learned declarations are read on every call, so a
 * declaration learned a moment ago counts at once.
 */
import { LookupCache } from '../cache'
import { LinksecError } from '../errors'
import { findEhloDeclaration, parseBannerToken, type Declaration } from '../levels'
import { combine } from './combine'
import { AnswerTemplate, AnswerTemplates, type StoredAnswers } from './compact'
import { lookupDane } from './dane-source'
import { normalizeDomain } from './domain'
import { learnedAnswer, LearnedStore, type LearnedVia, type LearnOutcome } from './learned'
import { lookupMtaSts } from './mta-sts-source'
import { errorTtlMs, stillValid, type SourceContext } from './source-context'
import { staticAnswer, type StaticList } from './static-list'
import { lookupTxt } from './txt-source'
import type { DomainPolicy, PolicySource, SourceAnswer } from './types'

export interface PolicyResolverDeps extends SourceContext {
  staticList: StaticList
  learned: LearnedStore
}

export interface PolicyResolver {
  /** What is believed of DOMAIN now. Never throws for lookup failures; throws LINKSEC_BAD_DOMAIN for a non-domain. */
  resolve(domain: string): Promise<DomainPolicy>
  /** sig= from the domain's `_linksec` record (docs/architecture.md §6.4). */
  signaturePolicy(domain: string): Promise<DomainPolicy['signatures']>
  /** Remembers a peer's declaration for its ttl (EHLO keyword or banner token, already parsed). */
  learnDeclaration(name: string, d: Declaration, via: LearnedVia): LearnOutcome
  /** Parses EHLO reply lines and learns a LINKSEC declaration; malformed ones are counted and ignored. */
  learnFromEhlo(name: string, lines: readonly string[]): LearnOutcome | 'absent' | 'rejected'
  /** Parses a 220 greeting for `LINKSEC=<N>` (Postfix peers); the same rules. */
  learnFromBanner(name: string, banner: string): LearnOutcome | 'absent' | 'rejected'
}

/** Network answers are kept at most this long before asking again (the sources may ask for less). */
const MAX_CACHE_SECONDS = 3600

type NetworkSource = Exclude<PolicySource, 'static' | 'learned'>
const NETWORK: readonly { source: NetworkSource; lookup: typeof lookupTxt }[] = [
  { source: 'dane', lookup: lookupDane },
  { source: 'mta_sts', lookup: lookupMtaSts },
  { source: 'txt', lookup: lookupTxt },
]

export function createPolicyResolver(deps: PolicyResolverDeps): PolicyResolver {
  const templates = new AnswerTemplates()
  const cache = new LookupCache<StoredAnswers>({
    max: deps.config.policy.cache_max,
    now: deps.now,
    // Past its refresh time an entry matters only while an answer in it is still a promise
    // (templates hold plain answers without lifetimes: never).
    keepExpired: (v, now) => !(v instanceof AnswerTemplate) && v.some((a) => stillValid(a, now)),
  })
  const enabled = (s: NetworkSource) =>
    ({ dane: deps.config.policy.dane, mta_sts: deps.config.policy.mta_sts, txt: deps.config.policy.txt })[s]

  const lookupOne = async (
    spec: (typeof NETWORK)[number],
    domain: string,
    prev: SourceAnswer | undefined,
  ): Promise<SourceAnswer> => {
    if (!enabled(spec.source))
      return { source: spec.source, outcome: 'disabled', reason: `[policy] ${spec.source} = false` }
    let a: SourceAnswer
    try {
      a = await spec.lookup(domain, prev, deps)
    } catch (e) {
      // A bug in a source must cost a retry, never a crash or a wrong accept.
      deps.log.error('policy source failed', { source: spec.source, domain, error: String(e) })
      a = { source: spec.source, outcome: 'error', reason: `internal error: ${String(e)}` }
    }
    deps.metrics.policyLookups.inc({ source: spec.source, outcome: a.outcome })
    return a
  }

  const loadNetwork = async (domain: string) => {
    const kept = cache.peek(domain)
    const prev = kept && AnswerTemplates.load(domain, kept.value)
    const answers = await Promise.all(
      NETWORK.map((spec) =>
        lookupOne(
          spec,
          domain,
          prev?.find((a) => a.source === spec.source),
        ),
      ),
    )
    return { value: templates.store(domain, answers), ttlMs: cacheTtlMs(answers, deps) }
  }

  const resolve = async (input: string): Promise<DomainPolicy> => {
    const domain = normalizeDomain(input)
    if (!domain)
      throw new LinksecError('LINKSEC_BAD_DOMAIN', `"${input.slice(0, 100)}" is not a domain name`, {
        temporary: false,
      })
    const [net, learned] = await Promise.all([
      cache.getOrLoad(domain, () => loadNetwork(domain)),
      deps.learned.lookup(domain),
    ])
    if (net.cached) deps.metrics.policyLookups.inc({ source: 'all', outcome: 'cached' })
    return combine(domain, [
      staticAnswer(domain, deps.staticList),
      ...AnswerTemplates.load(domain, net.value),
      learnedAnswer(domain, learned),
    ])
  }

  return {
    resolve,
    signaturePolicy: async (domain) => (await resolve(domain)).signatures,
    learnDeclaration: (name, d, via) => learn(deps, name, d, via),
    learnFromEhlo: (name, lines) => learnParsed(deps, name, findEhloDeclaration(lines), 'ehlo'),
    learnFromBanner: (name, banner) => learnParsed(deps, name, parseBannerToken(banner), 'banner'),
  }
}

function learn(deps: PolicyResolverDeps, name: string, d: Declaration, via: LearnedVia): LearnOutcome {
  const domain = normalizeDomain(name)
  if (!domain) {
    deps.metrics.declarationsRejected.inc({ source: via, reason: 'bad_name' })
    return 'not_kept'
  }
  deps.metrics.peerDeclarations.inc({ source: via, level: String(d.level) })
  return deps.learned.learn(domain, d, via)
}

function learnParsed(
  deps: PolicyResolverDeps,
  name: string,
  parsed: ReturnType<typeof parseBannerToken>,
  via: LearnedVia,
): LearnOutcome | 'absent' | 'rejected' {
  if (!parsed) return 'absent'
  if (!parsed.ok) {
    deps.metrics.declarationsRejected.inc({ source: via, reason: parsed.reason })
    return 'rejected'
  }
  return learn(deps, name, parsed.value, via)
}

/**
 * How long the network answers stand before the next lookup: until the
 * earliest refresh any source asked for; `none` answers for [policy]
 * negative_ttl; failures briefly (a stale answer is retried as soon).
 */
function cacheTtlMs(answers: readonly SourceAnswer[], deps: PolicyResolverDeps): number {
  const now = deps.now()
  const negative = deps.config.policy.negative_ttl * 1000
  const ttls = answers.map((a) => {
    switch (a.outcome) {
      case 'found':
      case 'stale':
        return a.refreshAt !== undefined ? a.refreshAt - now : negative
      case 'none':
        return negative
      case 'error':
        return errorTtlMs(deps.config)
      default:
        return Infinity
    }
  })
  return Math.max(0, Math.min(MAX_CACHE_SECONDS * 1000, ...ttls))
}
