/**
 * The prom-client registry and every metric linksec exports (docs/architecture.md §7).
 * Both adapters count into the same definitions; each process has one
 * registry (createMetrics), tests make their own.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export type Adapter = 'milter' | 'haraka' | 'cli' | 'serve' | 'send'

export interface Metrics {
  registry: Registry
  /** Every message decision: verdict = accept|continue|tempfail|reject|discard|quarantine. */
  messages: Counter<'adapter' | 'verdict'>
  /** Tagged messages: level 1..4 or "requiretls"; outcome e.g. delivered_tls|bounced|rejected_plaintext|tempfail. */
  taggedMessages: Counter<'level' | 'outcome'>
  signatureResults: Counter<'result'>
  keyLookups: Counter<'method' | 'outcome'>
  keyLookupDuration: Histogram<'method'>
  peerDeclarations: Counter<'source' | 'level'>
  /** Declarations seen but not trusted, by source and reason. */
  declarationsRejected: Counter<'source' | 'reason'>
  policyLookups: Counter<'source' | 'outcome'>
  milterSessions: Gauge
  milterProtocolErrors: Counter<'reason'>
  /** Milter messages refused because a memory bound was passed (milter/limits.ts). */
  milterLimits: Counter<'limit'>
  socketmapRequests: Counter<'result'>
  inboundTls: Counter<'adapter' | 'tls'>
  internalErrors: Counter<'adapter' | 'stage'>
  wkdRequests: Counter<'layout' | 'status'>
  /** Outgoing mail the signer saw: signed|already_signed|not_ours|not_allowed|no_key|error. */
  signedMessages: Counter<'outcome'>
  wksSubmissions: Counter<'outcome'>
  /** GET /v1/recipients/<address>: HTTP status and, for a 200, the advice (encrypt|tagged|notice|retry; "none" otherwise). */
  recipientRequests: Counter<'status' | 'advice'>
  /** A sender address's key changed; certified = the new key carries the declared domain CA's certification. */
  keyChanges: Counter<'certified'>
}

/**
 * prom-client's gauges `nodejs_active_{handles,requests,resources}_total` break
 * the naming rule `promtool check metrics` enforces (a gauge must not end in
 * _total), so they are dropped; the same numbers stay available, by type, in
 * `linksec_nodejs_active_{handles,requests,resources}` (sum() them).
 */
const MISNAMED_DEFAULTS = ['active_handles_total', 'active_requests_total', 'active_resources_total']

function addProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: 'linksec_' })
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(`linksec_nodejs_${name}`)
}

export function createMetrics(opts: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (opts.processMetrics !== false) addProcessMetrics(registry)
  const reg = [registry]
  return {
    registry,
    messages: new Counter({
      name: 'linksec_messages_total',
      help: 'Messages decided, by adapter and verdict.',
      labelNames: ['adapter', 'verdict'],
      registers: reg,
    }),
    taggedMessages: new Counter({
      name: 'linksec_tagged_messages_total',
      help: 'Messages tagged as needing a secure path, by required level and outcome.',
      labelNames: ['level', 'outcome'],
      registers: reg,
    }),
    signatureResults: new Counter({
      name: 'linksec_signature_results_total',
      help: 'OpenPGP sender signature results (x-openpgp).',
      labelNames: ['result'],
      registers: reg,
    }),
    keyLookups: new Counter({
      name: 'linksec_key_lookups_total',
      help: 'Sender key lookups, by method (local, cache, wkd_advanced, wkd_direct, openpgpkey) and outcome.',
      labelNames: ['method', 'outcome'],
      registers: reg,
    }),
    keyLookupDuration: new Histogram({
      name: 'linksec_key_lookup_duration_seconds',
      help: 'Time in seconds to find a sender key, by method.',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: reg,
    }),
    peerDeclarations: new Counter({
      name: 'linksec_peer_declarations_total',
      help: 'Link-security declarations learned from peers, by source (ehlo, banner, txt, static, mta_sts, dane) and level.',
      labelNames: ['source', 'level'],
      registers: reg,
    }),
    declarationsRejected: new Counter({
      name: 'linksec_declarations_rejected_total',
      help: 'Declarations or policies seen but not trusted, by source and reason.',
      labelNames: ['source', 'reason'],
      registers: reg,
    }),
    policyLookups: new Counter({
      name: 'linksec_policy_lookups_total',
      help: 'Domain policy lookups, by source and outcome (found, none, error, cached).',
      labelNames: ['source', 'outcome'],
      registers: reg,
    }),
    milterSessions: new Gauge({
      name: 'linksec_milter_sessions',
      help: 'Milter sessions (MTA connections) currently open.',
      registers: reg,
    }),
    milterProtocolErrors: new Counter({
      name: 'linksec_milter_protocol_errors_total',
      help: 'Milter connections closed because of a protocol error, by reason.',
      labelNames: ['reason'],
      registers: reg,
    }),
    milterLimits: new Counter({
      name: 'linksec_milter_limits_total',
      help: 'Milter messages answered 552 or 451 because a memory bound was passed, by limit (headers, header_bytes, macro_bytes, held_bytes, message_bytes).',
      labelNames: ['limit'],
      registers: reg,
    }),
    socketmapRequests: new Counter({
      name: 'linksec_socketmap_requests_total',
      help: 'Postfix socketmap TLS-policy requests, by result (ok, notfound, temp, perm).',
      labelNames: ['result'],
      registers: reg,
    }),
    inboundTls: new Counter({
      name: 'linksec_inbound_messages_total',
      help: 'Inbound messages by whether their link was TLS.',
      labelNames: ['adapter', 'tls'],
      registers: reg,
    }),
    internalErrors: new Counter({
      name: 'linksec_internal_errors_total',
      help: 'Internal errors answered with a temporary failure, by adapter and stage.',
      labelNames: ['adapter', 'stage'],
      registers: reg,
    }),
    wkdRequests: new Counter({
      name: 'linksec_wkd_requests_total',
      help: 'Web Key Directory requests served, by layout (advanced, direct) and HTTP status.',
      labelNames: ['layout', 'status'],
      registers: reg,
    }),
    signedMessages: new Counter({
      name: 'linksec_signed_messages_total',
      help: 'Messages the OpenPGP signer handled, by outcome (signed, already_signed, not_ours, not_allowed, no_key, error).',
      labelNames: ['outcome'],
      registers: reg,
    }),
    wksSubmissions: new Counter({
      name: 'linksec_wks_messages_total',
      help: 'Web Key Service messages (submissions and confirmations), by outcome: confirmation_sent, published, or the refusal (foreign_domain, no_address, bad_key, bad_message, pending_full, rate_limited, unknown_nonce, mismatch, no_submission_key).',
      labelNames: ['outcome'],
      registers: reg,
    }),
    recipientRequests: new Counter({
      name: 'linksec_recipient_requests_total',
      help: 'Recipient look-ups (GET /v1/recipients/<address>), by HTTP status and, when answered, the advice given.',
      labelNames: ['status', 'advice'],
      registers: reg,
    }),
    keyChanges: new Counter({
      name: 'linksec_key_changes_total',
      help: "Signatures by a key other than the one last seen for the sender address, by whether the new key is certified by the sender domain's declared CA (true, false).",
      labelNames: ['certified'],
      registers: reg,
    }),
  }
}
