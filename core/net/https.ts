/**
 * HttpsClient for key (WKD) and policy (MTA-STS) fetches from strangers'
 * servers. What makes it safe to point at the internet:
 * - names resolve through our DnsClient only, and the connection goes to the
 *   address we resolved and vetted (no private targets unless allowed);
 * - SNI and the certificate name check use the URL host; trust is the
 *   system roots plus [net] ca_file;
 * - one deadline covers DNS, connect, handshake, headers and body, so a slow
 *   drip is cut at timeout_ms; bodies stop at max_bytes;
 * - redirects are refused unless the caller allows some, and then only to
 *   https on the same host and port (RFC 8461 §3.3 allows none at all).
 */
import { deadline } from './deadline'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as tls from 'node:tls'
import { configPath } from '../config'
import { ConfigError, LinksecError } from '../errors'
import { engineService, sectionsKey } from '../engine'
import type { Runtime } from '../runtime'
import { classifyAddress, isAllowedAddress } from './addresses'
import { dnsClientFor } from './dns'
import { fetchTimeout, requestOnce, type Target } from './https-request'
import type { DnsClient, FetchOptions, FetchResponse, HttpsClient } from './types'

export interface HttpsClientOptions {
  dns: DnsClient
  /** PEM file of extra trust anchors (absolute path); '' or undefined = system roots only. */
  caFile?: string
  allowPrivateAddresses: boolean
  /** Port used when the URL names none. */
  httpsPort: number
  timeoutMs: number
  maxBytes: number
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])

/** Trust anchors: the system roots plus CA_FILE (a ConfigError naming the key when unusable). */
function loadTrust(caFile: string | undefined): tls.SecureContext | undefined {
  if (!caFile) return undefined
  let pem: string
  try {
    pem = fs.readFileSync(caFile, 'utf8')
  } catch (e) {
    throw new ConfigError(
      `[net] ca_file: cannot read ${caFile} (${(e as Error).message}); fix the path or leave it empty`,
    )
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError(
      `[net] ca_file: ${caFile} holds no PEM certificate; give a file of CA certificates in PEM`,
    )
  try {
    return tls.createSecureContext({ ca: [...tls.rootCertificates, pem], minVersion: 'TLSv1.2' })
  } catch (e) {
    throw new ConfigError(`[net] ca_file: ${caFile} is not usable: ${(e as Error).message}`)
  }
}

function badUrl(url: string, why: string): LinksecError {
  return new LinksecError('LINKSEC_FETCH_BAD_URL', `cannot fetch "${url}": ${why}`, { temporary: false })
}

/** Splits an https URL; the port written in the URL (even :443) wins over defaultPort. */
export function parseTarget(url: string, defaultPort: number): Target {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw badUrl(url, 'not a URL')
  }
  if (u.protocol !== 'https:') throw badUrl(url, 'only https URLs are fetched')
  if (u.username || u.password) throw badUrl(url, 'credentials in URLs are not sent')
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase()
  if (!host) throw badUrl(url, 'no host')
  const written = /^https:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d+)/i.exec(url)
  const port = written ? Number(written[1]) : defaultPort
  return { url: u.href, host, port, path: `${u.pathname}${u.search}` }
}

export function createHttpsClient(opts: HttpsClientOptions): HttpsClient {
  const secureContext = loadTrust(opts.caFile)

  async function addressesOf(host: string, signal: AbortSignal): Promise<string[]> {
    if (net.isIP(host)) return vet(host, [host])
    const a = await opts.dns.query(host, 'A', { signal })
    const v4 = a.records.flatMap((r) => (r.type === 'A' ? [r.address] : []))
    const usable4 = v4.filter((ip) => isAllowedAddress(ip, opts.allowPrivateAddresses))
    if (usable4.length) return usable4
    const aaaa = await opts.dns.query(host, 'AAAA', { signal })
    const v6 = aaaa.records.flatMap((r) => (r.type === 'AAAA' ? [r.address] : []))
    if (v4.length + v6.length === 0) throw noAddress(host, [a.rcode, aaaa.rcode])
    return vet(host, [...v4, ...v6])
  }

  function vet(host: string, all: string[]): string[] {
    const ok = all.filter((ip) => isAllowedAddress(ip, opts.allowPrivateAddresses))
    if (ok.length) return ok
    const seen = all.map((ip) => `${ip} (${classifyAddress(ip)})`).join(', ')
    throw new LinksecError(
      'LINKSEC_FETCH_PRIVATE_ADDRESS',
      `${host} resolves only to addresses linksec does not fetch from: ${seen}; set [net] allow_private_addresses=true only for private test setups`,
      { temporary: false },
    )
  }

  async function fetchOne(
    target: Target,
    o: Required<Pick<FetchOptions, 'method' | 'maxBytes'>> & Pick<FetchOptions, 'body' | 'headers'>,
    signal: AbortSignal,
  ) {
    const addresses = await addressesOf(target.host, signal)
    for (let i = 0; ; i++) {
      const plan = { target, address: addresses[i]!, ...o, secureContext, signal, timeoutMs: opts.timeoutMs }
      try {
        return await requestOnce(plan)
      } catch (e) {
        // Only a refused/failed connection is worth another address of the same host.
        const retry = (e as LinksecError).code === 'LINKSEC_FETCH_CONNECT' && i + 1 < addresses.length
        if (!retry || signal.aborted) throw e
      }
    }
  }

  async function get(url: string, o: FetchOptions = {}): Promise<FetchResponse> {
    let target = parseTarget(url, opts.httpsPort)
    const limit = deadline(opts.timeoutMs, o.signal)
    const signal = limit.signal
    const req = {
      method: o.method ?? 'GET',
      maxBytes: o.maxBytes ?? opts.maxBytes,
      body: o.body,
      headers: o.headers,
    }
    try {
      for (let hops = 0; ; hops++) {
        const res = await withDeadline(fetchOne(target, req, signal), signal, target, opts.timeoutMs)
        const location = res.headers['location']
        if (!REDIRECT_STATUSES.has(res.status) || !location) return res
        target = followRedirect(target, location, hops, o.maxRedirects ?? 0, opts.httpsPort)
      }
    } finally {
      limit.dispose()
    }
  }

  return { get }
}

/** DNS errors keep their own codes; an abort anywhere in the chain is our deadline. */
async function withDeadline<T>(p: Promise<T>, signal: AbortSignal, target: Target, ms: number): Promise<T> {
  try {
    return await p
  } catch (e) {
    if (signal.aborted && (e as LinksecError).code === 'LINKSEC_DNS_TIMEOUT') throw fetchTimeout(target, ms)
    throw e
  }
}

function noAddress(host: string, rcodes: string[]): LinksecError {
  // NXDOMAIN or no records is an answer (WKD falls back to the direct method on it);
  // SERVFAIL and friends are not, so those stay temporary.
  const definite = rcodes.every((r) => r === 'NOERROR' || r === 'NXDOMAIN')
  return new LinksecError(
    'LINKSEC_FETCH_NO_ADDRESS',
    `${host} has no address (A/AAAA: ${rcodes.join('/')})`,
    { temporary: !definite },
  )
}

/** The next target of a redirect, or LINKSEC_FETCH_REDIRECT when it may not be followed. */
function followRedirect(from: Target, location: string, hops: number, max: number, port: number): Target {
  const refuse = (why: string) =>
    new LinksecError('LINKSEC_FETCH_REDIRECT', `${from.url} redirects to ${location}: ${why}`, {
      temporary: false,
    })
  if (hops >= max) throw refuse(max === 0 ? 'redirects are not followed here' : `more than ${max} redirects`)
  let abs: string
  try {
    abs = new URL(location, from.url).href
  } catch {
    throw refuse('not a URL')
  }
  if (!abs.startsWith('https:')) throw refuse('only https -> https redirects are followed')
  const next = parseTarget(abs, port)
  if (next.host !== from.host || next.port !== from.port)
    throw refuse('redirects to another host are not followed')
  return next
}

/** The HttpsClient for [net] (one per engine), or the one the engine was given. */
export const httpsClientFor = engineService<HttpsClient>({
  name: 'https',
  key: (c) => sectionsKey(c, ['net', 'resolver']),
  build: (rt) => rt.engine.deps.https ?? buildHttpsClient(rt),
})

function buildHttpsClient(rt: Runtime): HttpsClient {
  const net = rt.config.net
  return createHttpsClient({
    dns: dnsClientFor(rt),
    caFile: net.ca_file ? configPath(rt.config, net.ca_file) : undefined,
    allowPrivateAddresses: net.allow_private_addresses,
    httpsPort: net.https_port,
    timeoutMs: net.timeout_ms,
    maxBytes: net.max_bytes,
  })
}
