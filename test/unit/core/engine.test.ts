/**
 * The Engine (core/engine.ts): one per process, reconfigured on reload
 * without losing the services whose config sections stayed the same (the
 * policy resolver's learned declarations, the key finder's cache), closing
 * the ones it replaces, closing everything at shutdown; DNS injected.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../../../core/config'
import { Engine, engineService, sectionsKey } from '../../../core/engine'
import { keyFinderFor } from '../../../core/keys'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import type { DnsClient } from '../../../core/net/types'
import { dnsClientFor } from '../../../core/net/dns'
import { learnedStoreFor, policyResolverFor } from '../../../core/policy'

const config = (raw: Record<string, Record<string, string>> = {}) =>
  parseConfig({ main: { authserv_id: 'mx.test' }, keys: { methods: 'local' }, ...raw }, '/tmp')

const engine = (raw: Record<string, Record<string, string>> = {}, dns?: DnsClient) =>
  new Engine(config(raw), { log: silentLogger, metrics: createMetrics({ processMetrics: false }), dns })

describe('Engine', () => {
  it('keeps services, learned declarations and the key cache across a reload that leaves their sections alone', async () => {
    const e = engine()
    const before = e.runtime
    const resolver = policyResolverFor(before)
    const finder = keyFinderFor(before)
    assert.equal(resolver.learnFromEhlo('peer.test', ['250-peer.test', '250 LINKSEC 3 ttl=3600']), 'stored')
    const after = await e.reconfigure(config({ verify: { on_fail: 'quarantine' } }))
    assert.notEqual(after, before, 'a new Runtime with the new config')
    assert.equal(after.config.verify.on_fail, 'quarantine')
    assert.equal(after.engine, e)
    assert.equal(policyResolverFor(after), resolver)
    assert.equal(keyFinderFor(after), finder)
    assert.equal(learnedStoreFor(after).get('peer.test')?.level, 3)
  })

  it('rebuilds a service whose sections changed, keeps the learned store, and closes what it replaced', async () => {
    const closed: string[] = []
    const probe = engineService({
      name: 'probe',
      key: (c) => sectionsKey(c, ['resolver']),
      build: (rt) => ({ timeout: rt.config.resolver.timeout_ms }),
      close: (v) => void closed.push(`probe ${v.timeout}`),
    })
    const e = engine({ resolver: { timeout_ms: '1000' } })
    const first = probe(e.runtime)
    const resolver = policyResolverFor(e.runtime)
    resolver.learnFromEhlo('peer.test', ['250-peer.test', '250 LINKSEC 2 ttl=3600'])
    const rt = await e.reconfigure(config({ resolver: { timeout_ms: '2000' } }))
    assert.deepEqual(closed, ['probe 1000'])
    const second = probe(rt)
    assert.notEqual(second, first)
    assert.equal(second.timeout, 2000)
    assert.notEqual(policyResolverFor(rt), resolver, 'the resolver depends on [resolver]')
    assert.equal(learnedStoreFor(rt).get('peer.test')?.level, 2, 'what it learned is kept')
    await e.close()
    assert.deepEqual(closed, ['probe 1000', 'probe 2000'])
    assert.throws(() => probe(rt), /engine is closed/)
  })

  it('uses the DNS client it was given', () => {
    const dns = { query: () => Promise.reject(new Error('not here')) } as unknown as DnsClient
    assert.equal(dnsClientFor(engine({}, dns).runtime), dns)
    assert.notEqual(dnsClientFor(engine().runtime), dns)
  })
})
