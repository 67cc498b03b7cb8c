/**
 * Small fakes for the policy tests: a DNS client answering from a table, an
 * HTTPS client serving from a table, a settable clock, and a resolver built
 * on them.
 */
import { defaultConfig, parseConfig, type LinksecConfig } from '../../../../core/config'
import { LinksecError } from '../../../../core/errors'
import { silentLogger } from '../../../../core/log'
import { createMetrics, type Metrics } from '../../../../core/metrics'
import type {
  DnsAnswer,
  DnsClient,
  DnsRecord,
  DnsType,
  FetchResponse,
  HttpsClient,
} from '../../../../core/net/types'
import { LearnedStore } from '../../../../core/policy/learned'
import { createPolicyResolver, type PolicyResolver } from '../../../../core/policy/resolver'
import { EMPTY_STATIC_LIST, parseStaticList, type StaticList } from '../../../../core/policy/static-list'

export type FakeDnsEntry = DnsAnswer | LinksecError | (() => Promise<DnsAnswer>)

export class FakeDns implements DnsClient {
  readonly zone = new Map<string, FakeDnsEntry>()
  readonly asked: string[] = []

  set(name: string, type: DnsType, entry: FakeDnsEntry): this {
    this.zone.set(`${name.toLowerCase()}/${type}`, entry)
    return this
  }

  txt(name: string, texts: string[], opts: { ttl?: number; ad?: boolean } = {}): this {
    const records: DnsRecord[] = texts.map((text) => ({ type: 'TXT', name, ttl: opts.ttl ?? 300, text }))
    return this.set(name, 'TXT', { rcode: 'NOERROR', authenticated: opts.ad ?? false, records })
  }

  fail(name: string, type: DnsType, code = 'LINKSEC_DNS_TIMEOUT'): this {
    return this.set(name, type, new LinksecError(code, `${name} ${type}: timed out`))
  }

  async query(name: string, type: DnsType): Promise<DnsAnswer> {
    this.asked.push(`${name}/${type}`)
    const e = this.zone.get(`${name.toLowerCase()}/${type}`)
    if (e === undefined) return { rcode: 'NXDOMAIN', authenticated: false, records: [] }
    if (e instanceof Error) throw e
    if (typeof e === 'function') return e()
    return e
  }

  count(prefix: string): number {
    return this.asked.filter((q) => q.startsWith(prefix)).length
  }
}

export type FakeHttpsEntry = Partial<FetchResponse> | LinksecError

export class FakeHttps implements HttpsClient {
  readonly pages = new Map<string, FakeHttpsEntry>()
  readonly fetched: string[] = []

  serve(url: string, body: string, headers: Record<string, string> = { 'content-type': 'text/plain' }): this {
    this.pages.set(url, { status: 200, headers, body: Buffer.from(body) })
    return this
  }

  async get(url: string): Promise<FetchResponse> {
    this.fetched.push(url)
    const p = this.pages.get(url)
    if (p === undefined) throw new LinksecError('LINKSEC_FETCH_CONNECT', `connection refused: ${url}`)
    if (p instanceof Error) throw p
    return { status: 200, headers: {}, body: Buffer.alloc(0), url, ...p }
  }
}

export const STS_POLICY = (mode: string, mx: string[], maxAge = 86400) =>
  ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`].join('\r\n') +
  '\r\n'

export class Clock {
  constructor(public t = 1_700_000_000_000) {}
  now = () => this.t
  advance(seconds: number): void {
    this.t += seconds * 1000
  }
}

export interface Harness {
  dns: FakeDns
  https: FakeHttps
  clock: Clock
  metrics: Metrics
  config: LinksecConfig
  learned: LearnedStore
  resolver: PolicyResolver
}

export function harness(
  opts: { ini?: Record<string, Record<string, string>>; staticDoc?: unknown } = {},
): Harness {
  const dns = new FakeDns()
  const https = new FakeHttps()
  const clock = new Clock()
  const metrics = createMetrics({ processMetrics: false })
  const config = opts.ini ? parseConfig(opts.ini, '.') : defaultConfig()
  const staticList: StaticList = opts.staticDoc ? parseStaticList(opts.staticDoc).list : EMPTY_STATIC_LIST
  const learned = new LearnedStore({ max: config.policy.learned_max, now: clock.now })
  const resolver = createPolicyResolver({
    dns,
    https,
    now: clock.now,
    config,
    metrics,
    log: silentLogger,
    staticList,
    learned,
  })
  return { dns, https, clock, metrics, config, learned, resolver }
}

/** A counter's value for one label set, from the registry. */
export async function counterValue(
  m: Metrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name)
  const v = metric?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val))
  return v?.value ?? 0
}
