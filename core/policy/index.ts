/**
 * The policy engine for a runtime: `policyResolverFor(rt)` builds one
 * resolver per runtime from its config (DNS servers, trust anchors, limits,
 * static list, learned store, optional Redis), so the socketmap, the milter,
 * the Haraka plugin and `linksec check` all ask the same engine.
 */
import { configPath } from '../config'
import { dnsClientFor } from '../net/dns'
import { httpsClientFor } from '../net/https'
import { engineService, sectionsKey } from '../engine'
import type { Runtime } from '../runtime'
import { sharedCacheFor } from '../redis'
import { LearnedStore } from './learned'
import { createPolicyResolver, type PolicyResolver } from './resolver'
import { loadStaticList, type StaticList } from './static-list'

export { createPolicyResolver, type PolicyResolver, type PolicyResolverDeps } from './resolver'
export type { DomainPolicy, SourceAnswer, PolicySource, TlsMode, SourceOutcome } from './types'
export { parseNextHop, normalizeDomain } from './domain'
export { mxMatches } from './mta-sts-parse'

/** Reads [policy] domains_file; broken entries are logged and counted, a broken file throws ConfigError. */
export function staticListFor(rt: Runtime): StaticList {
  const file = configPath(rt.config, rt.config.policy.domains_file)
  const { list, problems } = loadStaticList(file, rt.now())
  for (const p of problems) {
    rt.log.warn('static domains list entry skipped', { file, domain: p.domain, reason: p.reason })
    rt.metrics.declarationsRejected.inc({ source: 'static', reason: 'bad_entry' })
  }
  return list
}

/** Declarations learned from peers (one per engine): they outlive every reload that keeps learned_max. */
export const learnedStoreFor = engineService<LearnedStore>({
  name: 'learned',
  key: (c) => `${c.policy.learned_max} ${Boolean(c.redis.url)}`,
  build: (rt) =>
    new LearnedStore({
      max: rt.config.policy.learned_max,
      now: () => rt.now(),
      shared: sharedCacheFor(rt),
      namespace: 'learned:',
    }),
})

/** The policy engine (one per engine; rebuilt, with the same learned store, when [policy], [net] or [resolver] change). */
export const policyResolverFor = engineService<PolicyResolver>({
  name: 'policy',
  key: (c) => sectionsKey(c, ['policy', 'net', 'resolver']) + learnedStoreKey(c),
  build: buildPolicyResolver,
})

const learnedStoreKey = (c: Runtime['config']) => `${c.policy.learned_max} ${Boolean(c.redis.url)}`

function buildPolicyResolver(rt: Runtime): PolicyResolver {
  const learned = learnedStoreFor(rt)
  return createPolicyResolver({
    dns: dnsClientFor(rt),
    https: httpsClientFor(rt),
    now: () => rt.now(),
    config: rt.config,
    metrics: rt.metrics,
    log: rt.log,
    staticList: staticListFor(rt),
    learned,
  })
}
