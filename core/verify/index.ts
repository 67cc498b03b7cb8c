/**
 * Sender signature verification for one message (docs/architecture.md §6.4), the entry both
 * adapters and `linksec verify` call:
 *
 *   verifyMessage(rt, raw) -> { verdict, headers, result, facts }
 *
 * `raw` is the whole message as received (headers + body). The result goes
 * into our own Authentication-Results field (prepended); incoming fields
 * claiming our authserv-id are deleted; the verdict follows `[verify]`.
 * Unexpected errors and the deadline give temperror, never a crash.
 */
import { describeError } from '../errors'
import { namedDomains } from '../address'
import { raceDeadline } from '../net/deadline'
import {
  continuityFor,
  fromAddress,
  keyFinderFor,
  type KeyContinuity,
  type KeyFinder,
  type MailAddress,
} from '../keys'
import { readKeyBlob, ringFor, type KeyRing } from '../keys/material'
import { checkContinuity } from './continuity'
import { dnsClientFor } from '../net/dns'
import { engineService, sectionsKey } from '../engine'
import type { Runtime } from '../runtime'
import { MAX_QUOTED, safeText, type HeaderEdit, type MessageDecision } from '../verdict'
import { authservId, formatAuthResults, type ResultFacts, type SignatureResult } from './authres'
import { checkSignatures, parseSignatureBlock } from './check'
import { findSignedForm, type SignedForm } from './extract'
import { headerValues, parseEntity, toCrlf, type HeaderField } from '../mime'
import { decide } from './policy'
import { createSignaturePolicyLookup, type SignaturePolicy, type SignaturePolicyLookup } from './sig-policy'
import { applyDomainCa, type CaOutcome, type CaPolicyDeps } from './ca-policy'
import { staticListFor } from '../policy'

export { formatAuthResults, authservId, type ResultFacts, type SignatureResult } from './authres'
export type { SignaturePolicy, SignaturePolicyLookup, CaDeclaration } from './sig-policy'
export { caDeclarationFor, type CaOutcome } from './ca-policy'

/** CA pins of the static domains list ([policy] domains_file), read once per engine. */
export const caPinsFor = engineService({
  name: 'ca-pins',
  key: (c) => sectionsKey(c, []) + c.policy.domains_file,
  build: (rt) => staticListFor(rt),
})

export interface VerifyContext {
  signal?: AbortSignal
  /** Replaces the default `_linksec` TXT lookup (e.g. core/policy's resolver). */
  signaturePolicy?: SignaturePolicyLookup
  /** Replaces the runtime's key finder (tests). */
  finder?: KeyFinder
  /** The adapter cut the body at [verify] max_message_bytes: the result is neutral. */
  truncated?: boolean
}

export interface VerifyDecision extends MessageDecision {
  result: SignatureResult
  facts: ResultFacts
}

/** Mutable so the catch-all still knows whether the message was signed. */
interface Evaluation {
  facts: ResultFacts
  signed: boolean
  requirement?: SignaturePolicy
  /** The From domain that declared sig=required. */
  requiredBy?: string
}

/** The `_linksec` sig= lookup of a runtime (the verifier's, shared with the sign step). */
export const signaturePolicyFor = engineService({
  name: 'signature-policy',
  key: (c) => `${sectionsKey(c, ['resolver'])} ${c.policy.negative_ttl}`,
  build: (rt) =>
    createSignaturePolicyLookup({
      dns: dnsClientFor(rt),
      now: rt.now,
      negativeTtlMs: rt.config.policy.negative_ttl * 1000,
    }),
})

export async function verifyMessage(
  rt: Runtime,
  raw: Buffer,
  ctx: VerifyContext = {},
): Promise<VerifyDecision> {
  const cfg = rt.config
  if (!cfg.verify.enabled)
    return {
      verdict: { action: 'continue', reason: 'verify_disabled' },
      headers: [],
      result: 'none',
      facts: { result: 'none', reason: 'verification is off' },
    }
  const message = parseEntity(raw.length > cfg.verify.max_message_bytes ? raw : toCrlf(raw))
  const ev: Evaluation = { facts: { result: 'none', reason: 'not checked' }, signed: false }
  try {
    const deadline = new Deadline(cfg.verify.deadline_ms, ctx.signal)
    await evaluate(rt, raw.length, message, ev, ctx, deadline)
  } catch (e) {
    ev.facts = { ...ev.facts, result: 'temperror', reason: describeError(e) }
    rt.log.warn('signature check failed', { error: describeError(e) })
  }
  rt.metrics.signatureResults.inc({ result: ev.facts.result })
  const id = authservId(cfg)
  const verdict = decide(cfg, ev)
  logResult(rt, ev, verdict.action)
  return {
    verdict,
    headers: headerEdits(id, ev.facts),
    result: ev.facts.result,
    facts: ev.facts,
  }
}

async function evaluate(
  rt: Runtime,
  size: number,
  message: ReturnType<typeof parseEntity>,
  ev: Evaluation,
  ctx: VerifyContext,
  deadline: Deadline,
): Promise<void> {
  const froms = headerValues(message.headers, 'from')
  const from = froms.length === 1 ? fromAddress(froms[0]!) : undefined
  ev.facts.from = from?.address
  if (size > rt.config.verify.max_message_bytes || ctx.truncated) {
    ev.facts = {
      ...ev.facts,
      result: 'neutral',
      reason: 'the message is larger than [verify] max_message_bytes',
    }
    return
  }
  const form = findSignedForm(message)
  ev.signed = form.kind !== 'none'
  ev.facts = { ...ev.facts, ...(await resultOf(rt, form, from, ctx, deadline)) }
  const r = ev.facts.result
  if (r === 'none' || r === 'neutral' || r === 'permerror')
    await applyRequirement(rt, fromDomains(froms), ev, ctx, deadline)
}

/**
 * Every domain any From field names (at most 5). Several From fields or
 * mailboxes must not hide a domain that requires signatures: a reader may
 * see any of them.
 */
function fromDomains(froms: string[]): string[] {
  return namedDomains(froms).slice(0, 5)
}

async function resultOf(
  rt: Runtime,
  form: SignedForm,
  from: MailAddress | undefined,
  ctx: VerifyContext,
  deadline: Deadline,
): Promise<Omit<ResultFacts, 'from'>> {
  if (form.kind === 'none') return { result: 'none', reason: form.reason }
  if (form.kind === 'broken') return { result: 'permerror', reason: form.reason }
  if (form.kind === 'unverifiable') return { result: 'neutral', reason: form.reason }
  if (!from) return { result: 'permerror', reason: 'the From field does not hold exactly one address' }
  const mismatch = protectedFromMismatch(form.signedHeaders, from)
  if (mismatch) return { result: 'fail', reason: mismatch }
  const sigs = parseSignatureBlock(form.signature)
  if (!Array.isArray(sigs)) return sigs
  const finder = ctx.finder ?? keyFinderFor(rt)
  // Local and cached keys need no I/O: no timer on that path.
  const found = finder.peek?.(from) ?? (await deadline.bound(finder.find(from, deadline.signal)))
  if (found.kind === 'temperror') return { result: 'temperror', reason: `key lookup failed: ${found.reason}` }
  if (found.kind === 'notfound') return { result: 'neutral', reason: found.reason }
  if (found.kind === 'unusable') return { result: found.result, reason: found.reason }
  const opts = { deadlineAt: deadline.at, signal: ctx.signal }
  const check = await checkSignatures(form.data, sigs, found.ring, rt.now(), opts)
  const caDeps: CaPolicyDeps = {
    lookup: ctx.signaturePolicy ?? signaturePolicyFor(rt),
    pins: caPinsFor(rt),
    finder,
    now: rt.now(),
    bound: (w) => deadline.bound(w),
    // Lazily: most messages (cached answers) never wait, so never need the signal.
    get signal() {
      return deadline.signal
    },
  }
  const continuity = continuityFor(rt)
  let ca: CaOutcome | undefined
  if (check.result === 'pass' && check.fingerprint)
    ca = await applyDomainCa(from, found.ring, check.fingerprint, found.source, caDeps)
  let facts: Omit<ResultFacts, 'from'> = { ...check, keySource: found.source, ...(ca ? caFacts(ca) : {}) }
  let ring = found.ring
  if (facts.result === 'fail' && found.source !== 'local') {
    // The published key is not one the domain's CA vouches for (or did not make the signature):
    // a CA-certified key this address signed with lately may still (core/keys/continuity.ts).
    const kept = await keptCertified(from, found.ring, continuity)
    const again = kept && (await checkSignatures(form.data, sigs, kept, rt.now(), opts))
    if (kept && again?.result === 'pass' && again.fingerprint) {
      const keptCa = await applyDomainCa(from, kept, again.fingerprint, 'kept', caDeps)
      if (keptCa.kind === 'certified') {
        ca = keptCa
        ring = kept
        facts = { ...again, keySource: 'kept', ...caFacts(keptCa) }
      }
    }
  }
  if (facts.result !== 'pass' || !facts.fingerprint) return facts
  if (ca?.kind === 'certified' && facts.keySource !== 'kept') {
    const key = ring.keys.find((k) => k.getFingerprint().toUpperCase() === facts.fingerprint)
    if (key) await continuity.rememberCertified(from.address, facts.fingerprint, Buffer.from(key.write()))
  }
  const change = await checkContinuity(
    from.address,
    facts.fingerprint,
    ring,
    facts.keySource ?? '',
    ca?.kind === 'certified',
    {
      store: continuity,
      metrics: rt.metrics,
      log: rt.log,
      rememberUnexplained: rt.config.verify.on_key_change === 'tag',
    },
  )
  return change.unexplainedFrom ? { ...facts, keyChange: { previous: change.unexplainedFrom } } : facts
}

/** The address's kept CA-certified key as a ring, with any copy of it the domain publishes now (their revocations count). */
async function keptCertified(
  from: MailAddress,
  published: KeyRing,
  store: KeyContinuity,
): Promise<KeyRing | undefined> {
  const kept = await store.certifiedKey(from.address)
  if (!kept) return undefined
  const keys = await readKeyBlob(kept.key).catch(() => [])
  const copies = published.keys.filter((k) => k.getFingerprint().toUpperCase() === kept.fpr)
  const ring = ringFor(from.address, [...keys, ...copies])
  return ring.keys.length ? ring : undefined
}

/** The CA rule's outcome in the result: fail when a counted CA did not certify the key. */
function caFacts(ca: CaOutcome): Partial<ResultFacts> {
  switch (ca.kind) {
    case 'none':
      return {}
    case 'ignored':
      return { ca: { fingerprint: ca.fingerprint, counted: false, why: ca.why } }
    case 'certified':
      return { ca: { fingerprint: ca.fingerprint, counted: true } }
    case 'not_certified':
      return { result: 'fail', reason: ca.reason, ca: { fingerprint: ca.fingerprint, counted: true } }
    case 'temperror':
      return { result: 'temperror', reason: ca.reason }
  }
}

/**
 * RFC 9788 (hp="clear", legacy protected-headers="v1"): a From inside the
 * signed part is what the signer vouched for; it must be the outer From.
 */
function protectedFromMismatch(inner: HeaderField[], outer: MailAddress): string | undefined {
  const froms = headerValues(inner, 'from')
  if (froms.length === 0) return undefined
  const signedFrom = froms.length === 1 ? fromAddress(froms[0]!) : undefined
  if (signedFrom?.address.toLowerCase() === outer.address.toLowerCase()) return undefined
  const signed = signedFrom?.address ?? froms.join(', ')
  return `the signed (protected) From ${safeText(signed, MAX_QUOTED)} differs from the message's From ${outer.address}`
}

/** Unsigned or uncheckable: the domain's sig=required decides; not knowing it is a temperror. */
async function applyRequirement(
  rt: Runtime,
  domains: string[],
  ev: Evaluation,
  ctx: VerifyContext,
  deadline: Deadline,
): Promise<void> {
  const lookup = ctx.signaturePolicy ?? signaturePolicyFor(rt)
  let unknown: string | undefined
  for (const domain of domains) {
    // A cached answer needs no I/O: no timer, no abort signal on that path (most messages).
    const p = lookup.peek?.(domain) ?? (await deadline.bound(lookup(domain, deadline.signal)))
    if (p === 'required') {
      ev.requirement = 'required'
      ev.requiredBy = domain
      return
    }
    if (p === 'unknown') unknown ??= domain
  }
  ev.requirement = unknown ? 'unknown' : 'optional'
  if (unknown)
    ev.facts = {
      ...ev.facts,
      result: 'temperror',
      reason: `${ev.facts.reason}; could not learn whether ${unknown} requires signed mail`,
    }
}

/** Our field only: forged ones claiming our authserv-id are removed by the pipeline's inbound-link step. */
function headerEdits(id: string, facts: ResultFacts): HeaderEdit[] {
  return [{ op: 'prepend', name: 'Authentication-Results', value: formatAuthResults(id, facts) }]
}

/**
 * `[verify] deadline_ms` for the message, applied to the steps that wait on
 * the network (key discovery, the sender's policy); the abort signal reaches
 * their requests. Created lazily: most messages never wait.
 */
class Deadline {
  /** Epoch ms; the CPU-bound steps check it between signatures. */
  readonly at: number
  private controller: AbortController | undefined

  constructor(
    private readonly ms: number,
    private readonly outer?: AbortSignal,
  ) {
    this.at = Date.now() + ms
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      const c = new AbortController()
      this.controller = c
      if (this.outer?.aborted) c.abort()
      else this.outer?.addEventListener('abort', () => c.abort(), { once: true })
    }
    return this.controller.signal
  }

  bound<T>(work: Promise<T>): Promise<T> {
    return raceDeadline(work, this.at - Date.now(), () => {
      this.controller?.abort()
      return new Error(`the check took longer than [verify] deadline_ms (${this.ms} ms)`)
    })
  }
}

function logResult(rt: Runtime, ev: Evaluation, action: string): void {
  const f = ev.facts
  const fields = {
    from: f.from,
    result: f.result,
    reason: f.reason,
    key: f.fingerprint,
    source: f.keySource,
    action,
  }
  // The decision line already says what happened to the message; this one is
  // for results an operator acts on (a forged or broken signature, a key host
  // failing). Logging every pass cost ~0.05 ms per message in Haraka (a sync
  // write to its stdout), so routine results go to debug.
  if (f.result === 'none' || f.result === 'pass' || f.result === 'neutral')
    rt.log.debug('sender signature', fields)
  else rt.log.info('sender signature', fields)
}
