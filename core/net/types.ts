/**
 * The network the core sees: a DNS client that reports the AD bit (Node's
 * resolver cannot) and an HTTPS client with caps. Both are injected, so the
 * core is tested against fakes and, in integration tests, against servers on
 * loopback (docs/architecture.md §2; knobs: [resolver] servers, [net] ca_file, ...).
 */
export type DnsType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'TLSA' | 'OPENPGPKEY' | 'CNAME'

export type DnsRecord =
  | { type: 'A' | 'AAAA'; name: string; ttl: number; address: string }
  | { type: 'MX'; name: string; ttl: number; priority: number; exchange: string }
  /** TXT character-strings of one record joined without a separator (RFC 7208 §3.3 style). */
  | { type: 'TXT'; name: string; ttl: number; text: string }
  | {
      type: 'TLSA'
      name: string
      ttl: number
      usage: number
      selector: number
      matchingType: number
      data: Buffer
    }
  | { type: 'OPENPGPKEY'; name: string; ttl: number; data: Buffer }
  | { type: 'CNAME'; name: string; ttl: number; target: string }

export type DnsRcode = 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED' | 'FORMERR' | 'NOTIMP' | 'OTHER'

export interface DnsAnswer {
  rcode: DnsRcode
  /** AD bit set by a resolver we trust ([resolver] trust_ad). */
  authenticated: boolean
  /** Records of the asked type only (CNAME chains followed by the resolver). */
  records: DnsRecord[]
}

export interface DnsQueryOptions {
  signal?: AbortSignal
}

export interface DnsClient {
  /**
   * Resolves NAME/TYPE. NXDOMAIN and empty answers are values, not errors.
   * Throws LinksecError (temporary) on timeout or unreachable servers:
   * LINKSEC_DNS_TIMEOUT, LINKSEC_DNS_NETWORK, LINKSEC_DNS_MALFORMED.
   * Also (permanent): LINKSEC_DNS_BAD_NAME for a name that cannot be asked.
   * SERVFAIL/REFUSED come back as values once every server said so.
   */
  query(name: string, type: DnsType, opts?: DnsQueryOptions): Promise<DnsAnswer>
}

export interface FetchResponse {
  status: number
  /** Lower-cased header names. */
  headers: Record<string, string>
  body: Buffer
  /** The URL finally answered (after any same-host redirect). */
  url: string
}

export interface FetchOptions {
  signal?: AbortSignal
  method?: 'GET' | 'HEAD' | 'POST'
  /** Request body (POST), sent with these extra headers (e.g. content-type). */
  body?: Buffer
  headers?: Record<string, string>
  /** Overrides [net] max_bytes for this request. */
  maxBytes?: number
  /** Follow https->https redirects to the same host (default 0: none). */
  maxRedirects?: number
}

export interface HttpsClient {
  /**
   * GET/HEAD (or POST, TLS reports) an https URL: the host is resolved through the DnsClient, private
   * and loopback addresses are refused unless allowed, the port is [net]
   * https_port, the body is capped at max_bytes and the whole request at
   * timeout_ms. Non-2xx statuses are returned, not thrown. Throws
   * LinksecError: LINKSEC_FETCH_TIMEOUT, LINKSEC_FETCH_TOO_LARGE,
   * LINKSEC_FETCH_PRIVATE_ADDRESS, LINKSEC_FETCH_REDIRECT, LINKSEC_FETCH_TLS,
   * LINKSEC_FETCH_CONNECT, LINKSEC_FETCH_NO_ADDRESS.
   * Also: LINKSEC_FETCH_BAD_URL (not https), LINKSEC_FETCH_PROTOCOL (bad
   * HTTP), and DNS errors (LINKSEC_DNS_*) from resolving the host.
   * LINKSEC_FETCH_NO_ADDRESS is permanent (temporary=false) when DNS said
   * NXDOMAIN/no records (WKD may then fall back to the direct method) and
   * temporary when the resolver failed. A 3xx that is not followed throws
   * LINKSEC_FETCH_REDIRECT (permanent).
   */
  get(url: string, opts?: FetchOptions): Promise<FetchResponse>
}
