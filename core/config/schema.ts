/**
 * The one configuration schema for both adapters (docs/architecture.md §2). Every key has a
 * documented default here; config/linksec.ini documents the same keys for
 * operators. Parsing turns haraka-config's INI object into a frozen, typed
 * LinksecConfig, or throws ConfigError naming the key and the fix.
 */
import { isIP } from 'node:net'
export type KeySpec = BoolSpec | IntSpec | StringSpec | EnumSpec<string> | ListSpec

type BoolSpec = { type: 'bool'; default: boolean }
type IntSpec = { type: 'int'; default: number; min: number; max: number }
/** A check beyond the pattern: a reason (what is wrong and what to write) when the value is bad. */
type Check = (value: string) => string | undefined
type StringSpec = { type: 'string'; default: string; pattern?: RegExp; hint?: string; check?: Check }
type EnumSpec<V extends string> = { type: 'enum'; default: V; values: readonly V[] }
type ListSpec = { type: 'list'; default: readonly string[]; pattern?: RegExp; hint?: string; check?: Check }
const bool = (d: boolean): BoolSpec => ({ type: 'bool', default: d })
const int = (d: number, min: number, max: number): IntSpec => ({ type: 'int', default: d, min, max })
const str = (d: string, pattern?: RegExp, hint?: string, check?: Check): StringSpec => ({
  type: 'string',
  default: d,
  pattern,
  hint,
  check,
})
const oneOf = <const V extends string>(d: V, values: readonly V[]): EnumSpec<V> => ({
  type: 'enum',
  default: d,
  values,
})
const list = (d: readonly string[], pattern?: RegExp, hint?: string, check?: Check): ListSpec => ({
  type: 'list',
  default: d,
  pattern,
  hint,
  check,
})

const ENDPOINT = /^(inet:[^\s:]+:\d{1,5}|inet6?:\[[0-9a-fA-F:.]+\]:\d{1,5}|unix:\/\S+)$/
const ENDPOINT_HINT = 'inet:HOST:PORT (e.g. inet:127.0.0.1:8891) or unix:/absolute/path'
const HOSTPORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/
const HOSTPORT_HINT = 'HOST:PORT, e.g. 127.0.0.1:9464'
/** DNS servers must be addresses: a resolver's name cannot be resolved without a resolver. */
const IPPORT = /^(\[[0-9a-fA-F:.]+\]|\d{1,3}(\.\d{1,3}){3})(:\d{1,5})?$/
const CIDR = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)(\/\d{1,3})?$/
const CIDR_HINT = 'an address or network, e.g. 127.0.0.0/8 or ::1/128'
const IPPORT_HINT = 'IP:PORT, e.g. 127.0.0.1:53 or [::1]:5353 (an address, not a name)'

/**
 * Listen addresses and DNS servers must be IP literals: a name would go to
 * the system resolver (which linksec never uses) and fail only after start,
 * and 999.1.1.1 matches the pattern but is no address.
 */
function ipAndPort(host: string, port: string | undefined, minPort: number): string | undefined {
  const h = host.replace(/^\[(.*)\]$/, '$1')
  if (isIP(h) === 0)
    return `${host} is not an IP address; write an address such as 127.0.0.1 or [::1], not a name`
  if (host.startsWith('[') !== (isIP(h) === 6))
    return `write an IPv6 address in brackets ([::1]), an IPv4 address without`
  if (port !== undefined) {
    const n = Number(port)
    if (n < minPort || n > 65535)
      return `port ${port} is out of range; write a port between ${minPort} and 65535`
  }
  return undefined
}

/** [resolver] servers: IP[:PORT], port 1-65535 (port 0 is no server). */
const dnsServerCheck: Check = (v) => {
  const m = /^(\[[^\]]*\]|[^:]+)(?::(\d+))?$/.exec(v)
  return m ? ipAndPort(m[1]!, m[2], 1) : undefined
}

/** inet:IP:PORT / inet6:[IP]:PORT (port 0 = any free port); unix: paths pass. */
const endpointCheck: Check = (v) => {
  const m = /^inet6?:(\[[^\]]*\]|[^:]+):(\d+)$/.exec(v)
  return m ? ipAndPort(m[1]!, m[2], 0) : undefined
}

/** [http] listen: IP[:PORT]. */
const listenCheck: Check = (v) => {
  const m = /^(\[[^\]]*\]|[^:]+)(?::(\d+))?$/.exec(v)
  return m ? ipAndPort(m[1]!, m[2], 0) : undefined
}

export const SCHEMA = {
  main: {
    /** authserv-id in Authentication-Results; empty = this host's name. */
    authserv_id: str('', /^[A-Za-z0-9._-]*$/, 'a host name such as mx.example.net'),
    /** The level this server declares, at most what its configuration performs. */
    level: int(3, 0, 4),
    /** Operator attestation for level 2: mailboxes are read only over TLS. */
    mailboxes_tls_only: bool(false),
    /** Lifetime (seconds) announced with every declaration. */
    declaration_ttl: int(86400, 60, 7 * 24 * 3600),
    /** This server's own domain, used by `linksec record` when none is given. */
    domain: str('', /^[A-Za-z0-9.-]*$/, 'a domain such as example.net'),
  },
  log: {
    level: oneOf('info', ['debug', 'info', 'warn', 'error']),
    format: oneOf('json', ['json', 'text']),
    /**
     * Which per-message decision lines are logged at info: `notable` (every
     * refusal, tempfail, quarantine, discard and every tagged message; a
     * routine untagged message that goes on is logged at debug) or `all`.
     */
    decisions: oneOf('notable', ['notable', 'all']),
  },
  declare: {
    /** EHLO `LINKSEC <N> ttl=<s>` (Haraka). */
    ehlo: bool(true),
    /** RFC 8689 REQUIRETLS on TLS sessions when the level is >= 3 (Haraka). */
    requiretls: bool(true),
  },
  inbound: {
    /** Add `Authentication-Results: …; x-tls=pass|none` describing the inbound link. */
    tls_results: bool(true),
    /** Reject a tagged message that arrived without TLS (550 5.7.10). */
    reject_tagged_plaintext: bool(true),
    /** Reject at end of data a tagged message for a recipient domain known to be below its level. */
    reject_weak_recipients: bool(true),
  },
  enforce: {
    /** Refuse to downgrade tagged mail on the way out (levels 3 and 4, docs/architecture.md §6.1). */
    enabled: bool(true),
    /** Also bounce tagged mail to servers declaring less than the tag (level 4). */
    peer_level: bool(true),
    /** What to do with a tagged message that cannot go out securely. */
    fallback: oneOf('bounce', ['bounce', 'deliver_safe_part']),
    /** Retry window for TLS handshake/certificate failures before bouncing (seconds). */
    tls_retry_window: int(600, 0, 5 * 24 * 3600),
    /** Header the milter adds so Postfix milter_header_checks can FILTER tagged mail. */
    route_header: str('X-Linksec-Route', /^[A-Za-z0-9-]+$/, 'a header name'),
  },
  verify: {
    enabled: bool(true),
    /** What a bad signature (x-openpgp=fail) gets. */
    on_fail: oneOf('reject', ['reject', 'quarantine', 'tag']),
    /** What unsigned mail from a domain declaring sig=required gets. */
    on_missing_required: oneOf('reject', ['reject', 'quarantine', 'tag']),
    /** Total time allowed for one message's key lookup and check (ms). */
    deadline_ms: int(20000, 100, 120000),
    /** Largest message (bytes) the verifier buffers; larger ones are neutral. */
    max_message_bytes: int(32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    /**
     * A sender's key changed without the domain CA's certification or a published overlap:
     * tag (A-R property, accept), tempfail (451, until the change is explained), reject (550).
     */
    on_key_change: oneOf('tag', ['tag', 'tempfail', 'reject']),
  },
  keys: {
    /** Keys this server publishes (WKD) and trusts first; relative to the config directory. */
    dir: str('keys'),
    methods: list(['local', 'wkd', 'openpgpkey'], /^(local|wkd|openpgpkey)$/, 'local, wkd or openpgpkey'),
    cache_max: int(10000, 0, 10_000_000),
    positive_ttl: int(3600, 0, 30 * 24 * 3600),
    negative_ttl: int(300, 0, 24 * 3600),
    /** Seconds a rotated-out key stays published (and valid) beside its successor (`linksec keys rotate`). */
    rotation_overlap: int(7 * 24 * 3600, 0, 365 * 24 * 3600),
  },
  policy: {
    /** Static list in the STARTTLS-Everywhere shape plus `level`; relative to the config directory. */
    domains_file: str('linksec.domains.json'),
    txt: bool(true),
    mta_sts: bool(true),
    dane: bool(true),
    cache_max: int(100000, 0, 10_000_000),
    /** How long a failed lookup is remembered (seconds). */
    negative_ttl: int(300, 0, 24 * 3600),
    /** Most learned EHLO declarations kept in memory. */
    learned_max: int(100000, 0, 10_000_000),
  },
  resolver: {
    /** DNS servers (HOST:PORT); empty = the system's /etc/resolv.conf servers. */
    servers: list([], IPPORT, IPPORT_HINT, dnsServerCheck),
    timeout_ms: int(3000, 50, 60000),
    /** Trust the AD bit from these servers (a validating resolver on a trusted path). */
    trust_ad: bool(true),
  },
  net: {
    /** Extra trust anchors (PEM) for HTTPS fetches, added to the system's. */
    ca_file: str(''),
    /** Allow key and policy fetches to private and loopback addresses. */
    allow_private_addresses: bool(false),
    https_port: int(443, 1, 65535),
    timeout_ms: int(10000, 50, 120000),
    max_bytes: int(256 * 1024, 1024, 64 * 1024 * 1024),
  },
  milter: {
    enabled: bool(true),
    listen: str('inet:127.0.0.1:8891', ENDPOINT, ENDPOINT_HINT, endpointCheck),
    max_sessions: int(2000, 1, 100000),
    max_frame_bytes: int(1024 * 1024, 65536 + 5, 64 * 1024 * 1024),
    /** A session idle longer than this (ms) is closed (a stalled peer). */
    idle_timeout_ms: int(360000, 1000, 3600000),
    /** How long SIGTERM waits for sessions in flight (ms). */
    shutdown_grace_ms: int(10000, 0, 600000),
    /** A connection that has not finished option negotiation this long after connecting is closed (ms). */
    negotiation_timeout_ms: int(10000, 100, 600000),
    /** A frame whose first byte arrived must be complete this long after it (ms): a dripping peer is closed. */
    frame_timeout_ms: int(10000, 100, 600000),
    /**
     * A connection must bring a message to its end within this long (ms) of
     * connecting or of its previous message's end: a peer dripping whole
     * frames is answered 451 4.4.2 and closed.
     */
    session_timeout_ms: int(3600000, 1000, 24 * 3600 * 1000),
    /** Header fields one message may have; past it the message gets 552 5.3.4. */
    max_headers: int(1000, 1, 100000),
    /** Bytes of header fields one message may have; past it the message gets 552 5.3.4. */
    max_header_bytes: int(1024 * 1024, 1024, 64 * 1024 * 1024),
    /** Bytes of macros one connection may hold; past it its messages get 451 4.3.1. */
    max_macro_bytes: int(64 * 1024, 1024, 16 * 1024 * 1024),
    /** Bytes all sessions together may hold (headers, bodies, macros); past it new data gets 451 4.3.1. */
    max_held_bytes: int(40 * 1024 * 1024, 1024 * 1024, 4 * 1024 * 1024 * 1024),
  },
  socketmap: {
    enabled: bool(true),
    listen: str('inet:127.0.0.1:8461', ENDPOINT, ENDPOINT_HINT, endpointCheck),
    name: str('linksec', /^[A-Za-z0-9_.-]+$/, 'a map name such as linksec'),
    /** Add Postfix 3.10+'s TLSRPT attributes (policy_type, policy_domain, …) to replies; older Postfix must keep false. */
    tlsrpt: bool(false),
  },
  http: {
    enabled: bool(true),
    listen: str('127.0.0.1:9464', HOSTPORT, HOSTPORT_HINT, listenCheck),
    /** Serve WKD for the keys in [keys] dir. */
    wkd: bool(true),
    /** GET /v1/recipients/<address>: what linksec knows of an address (core/http/recipients.ts). */
    recipients_api: bool(true),
    /** Networks besides loopback that may ask /v1/recipients/ (CIDRs); empty = loopback only. */
    recipients_allow: list([], CIDR, CIDR_HINT),
    /** Recipient look-ups per minute per client address (token bucket refill). */
    recipients_rate: int(60, 1, 1_000_000),
    /** Look-ups a client may make at once before the rate applies. */
    recipients_burst: int(20, 1, 1_000_000),
  },
  redis: {
    /** redis://HOST:PORT/DB; empty = no shared cache (everything works on one machine). */
    url: str('', /^(rediss?:\/\/\S+)?$/, 'redis://127.0.0.1:6379/0'),
    prefix: str('linksec:'),
  },
  sign: {
    /** Sign this server's users' mail with OpenPGP on the way out (RFC 3156 multipart/signed). */
    enabled: bool(false),
    /** Domains signed for besides [main] domain. */
    domains: list(
      [],
      /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$/,
      'a domain such as example.org',
    ),
    /** Clients whose mail is signed without authentication (CIDRs). */
    trusted_networks: list([], CIDR, CIDR_HINT),
    /** Lines `login address…`: which From addresses a login may use besides its own; relative to the config directory. */
    senders_file: str(''),
    /** Secret signing keys (created 0700, files 0600); relative to the config directory. */
    secret_dir: str('secret'),
    /** Copy From, To, Cc, Subject, Date, Message-ID into the signed part (RFC 9788 hp="clear"). */
    protected_headers: bool(false),
    /** Largest message (bytes) signed; larger ones are not signed. */
    max_message_bytes: int(32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  },
  wks: {
    /** Web Key Service (draft-koch-openpgp-webkey-service): users publish their own keys by mail. */
    enabled: bool(false),
    /** Local part of the submission address, `<local_part>@<domain>` for [main] domain and [sign] domains. */
    local_part: str('key-submission', /^[A-Za-z0-9._+-]+$/, 'a local part such as key-submission'),
    /** Submissions waiting for their confirmation (relative to the config directory). */
    pending_dir: str('wks-pending'),
    /** Most submissions waiting at once; past it new ones are refused. */
    pending_max: int(1000, 1, 1_000_000),
    /** Seconds a confirmation request stays answerable. */
    pending_ttl: int(3 * 24 * 3600, 60, 30 * 24 * 3600),
    /** Submissions waiting per address at once (a flood for one address is refused). */
    per_address: int(3, 1, 100),
    /** The MTA that mails confirmation requests (SMTP, HOST:PORT): the local Postfix or Haraka. */
    relay: str('127.0.0.1:25', HOSTPORT, HOSTPORT_HINT),
  },
  tls: {
    /** Haraka: make a self-signed certificate at start when none is configured. */
    self_signed: bool(true),
    /** Name in the certificate (subject and SAN); empty = [main] authserv_id, else this host's name. */
    hostname: str('', /^[A-Za-z0-9.-]*$/, 'a host name such as mx.example.net'),
    /** This server's STARTTLS certificate and key, relative to the config directory (Haraka's names). */
    cert_file: str('tls_cert.pem'),
    key_file: str('tls_key.pem'),
    /** `linksec serve` (daily) and the Haraka plugin (at start) renew a certificate linksec made, 30 days before it expires. */
    renew: bool(true),
  },
  tlsrpt: {
    /** Count every outbound TLS outcome per policy domain and day (RFC 8460); in Redis when [redis] url is set. */
    enabled: bool(true),
    /** `linksec serve` sends yesterday's reports once a day (with Redis, one instance of the fleet does). */
    send: bool(true),
    /** organization-name in reports; empty = [main] domain, else the host name. */
    organization: str(''),
    /** contact-info in reports, e.g. mailto:postmaster@example.net; empty = postmaster@<organization>. */
    contact: str(''),
    /** Sender of mailed reports; empty = noreply-tlsrpt@<organization>. */
    from: str(''),
    /** The MTA that mails reports (SMTP, HOST:PORT): the local Postfix or Haraka. */
    relay: str('127.0.0.1:25', HOSTPORT, HOSTPORT_HINT),
    /**
     * `linksec serve`: Postfix's mail log to read TLS outcomes from (Postfix before 3.10 tells
     * policy servers none): its maillog_file or the file syslog writes; empty = not read.
     */
    postfix_log: str('', /^[^\0\n]*$/, 'a file path such as /var/log/mail.log'),
  },
  send: {
    /** HOST:PORT of the relay `linksec send` falls back to (STARTTLS, AUTH); empty = direct delivery only. */
    relay: str('', HOSTPORT, 'HOST:PORT, e.g. smtp.example.org:587'),
    /** AUTH user at the relay; empty = no AUTH. */
    relay_user: str(''),
    /** File holding the relay password (one line); relative to the config directory. */
    relay_password_file: str(''),
    /** Port of the recipients' MX hosts. */
    port: int(25, 1, 65535),
    /** off: encrypt only with --encrypt; auto: also when every recipient publishes a key. */
    encrypt: oneOf('off', ['off', 'auto']),
    /** Per SMTP step (connect, greeting, each reply), ms. */
    timeout_ms: int(60000, 100, 600000),
    /** File `linksec send` appends one JSON decision line per recipient to (relative to the config directory); empty = none. */
    log_file: str('', /^[^\0\n]*$/, 'a file path such as /var/log/linksec-send.log'),
  },
} as const satisfies Record<string, Record<string, KeySpec>>

type Schema = typeof SCHEMA
type ValueOf<S> = S extends BoolSpec
  ? boolean
  : S extends IntSpec
    ? number
    : S extends ListSpec
      ? readonly string[]
      : S extends EnumSpec<infer V>
        ? V
        : string

export type LinksecConfig = {
  readonly [Sec in keyof Schema]: { readonly [K in keyof Schema[Sec]]: ValueOf<Schema[Sec][K]> }
} & {
  /** Absolute path of the configuration directory this was loaded from. */
  readonly dir: string
}

/**
 * Options for haraka-config's get(). No `booleans` list on purpose: with one,
 * haraka-config turns any value of a boolean key into true/false silently
 * (`ehlo=maybe` becomes false), so a typo would never reach our validator.
 * Without it values arrive as written and parseConfig names the mistake.
 */
export const HARAKA_CONFIG_OPTIONS = Object.freeze({})
