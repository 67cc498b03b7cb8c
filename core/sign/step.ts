/**
 * The sign step of the end-of-message pipeline: who is signed (who.ts), the
 * key (secrets.ts), the RFC 3156 form (index.ts), and what a failure gets.
 * Anything not signed passes unsigned and is counted, except when the From
 * domain declares sig=required in its _linksec record: then a missing key
 * or a signing error gets 451 4.7.0 and a login using a From it may not use
 * gets 550 5.7.1, never an unsigned message its receivers would refuse.
 */
import { configPath } from '../config'
import { mailDomain, namedDomains } from '../address'
import { ConfigError, describeError } from '../errors'
import { engineService, sectionsKey } from '../engine'
import type { Runtime } from '../runtime'
import { reject, tempfail, type HeaderEdit, type Verdict } from '../verdict'
import { signaturePolicyFor, type SignaturePolicy, type SignaturePolicyLookup } from '../verify'
import { caStoreFor, keyStoreFor } from '../keys'
import { checkSignatures, parseSignatureBlock } from '../verify/check'
import { findSignedForm } from '../verify/extract'
import { parseEntity, rawFields, splitEntity, toCrlf, type RawField } from '../mime'
import { signParsed } from './index'
import { SecretStore } from './secrets'
import { loadSenders } from './senders'
import { trustedNetworks, whoSigns, type SignerScope, type SubmissionFacts } from './who'

export type SignOutcome = 'signed' | 'already_signed' | 'not_ours' | 'not_allowed' | 'no_key' | 'error'

export interface SignFacts extends Omit<SubmissionFacts, 'from'> {
  /** The verify step found a valid top-level signature for the From address. */
  verified?: boolean
  /** The adapter cut the body short (it holds at most [verify]/[sign] max_message_bytes). */
  truncated?: boolean
}

export interface SignDecision {
  outcome: SignOutcome
  /** continue, or the tempfail/reject a failure under sig=required gets. */
  verdict: Verdict
  /** With `signed`: the header edits and the new body. */
  headers: HeaderEdit[]
  body?: Buffer
  /** For the decision log. */
  reason: string
  address?: string
  fingerprint?: string
}

export const secretStoreFor = engineService({
  name: 'secrets',
  key: (c) => sectionsKey(c, []) + c.sign.secret_dir,
  build: (rt) => new SecretStore(configPath(rt.config, rt.config.sign.secret_dir), rt.log, rt.now),
})

/** The domains signed for: [main] domain and [sign] domains. */
export function signedDomains(cfg: Runtime['config']): Set<string> {
  return new Set([cfg.main.domain, ...cfg.sign.domains].flatMap((d) => mailDomain(d) ?? []))
}

export const signerScopeFor = engineService({
  name: 'signer-scope',
  key: (c) => sectionsKey(c, ['sign']) + c.main.domain,
  build: (rt): SignerScope => ({
    domains: signedDomains(rt.config),
    trusted: trustedNetworks(rt.config.sign.trusted_networks),
    senders: loadSenders(
      rt.config.sign.senders_file ? configPath(rt.config, rt.config.sign.senders_file) : undefined,
    ),
  }),
})

const pass = (outcome: SignOutcome, reason: string, address?: string): SignDecision => ({
  outcome,
  verdict: { action: 'continue', reason: `sign_${outcome}` },
  headers: [],
  reason,
  address,
})

export interface SignStepOptions {
  /** Replaces the _linksec sig= lookup (tests). */
  signaturePolicy?: SignaturePolicyLookup
  signal?: AbortSignal
}

/** Decides and signs one message; never throws (an unexpected error is the `error` outcome). */
export async function signStep(
  rt: Runtime,
  raw: Buffer,
  facts: SignFacts,
  opts: SignStepOptions = {},
): Promise<SignDecision> {
  const d = await decideAndSign(rt, raw, facts, opts).catch(async (e: unknown) => {
    rt.log.warn('signing failed', { error: describeError(e) })
    return failure(rt, 'error', `signing failed: ${describeError(e)}`, fromOf(raw), opts)
  })
  rt.metrics.signedMessages.inc({ outcome: d.outcome })
  return d
}

function fromOf(raw: Buffer): string[] {
  return fromFields(rawFields(splitEntity(raw).head))
}

/** The unfolded values of the From fields. */
function fromFields(top: RawField[]): string[] {
  return top
    .filter((f) => f.key === 'from')
    .map((f) =>
      f.raw
        .slice(f.raw.indexOf(':') + 1)
        .replace(/\r\n/g, '')
        .trim(),
    )
}

async function decideAndSign(
  rt: Runtime,
  raw: Buffer,
  facts: SignFacts,
  opts: SignStepOptions,
): Promise<SignDecision> {
  const cfg = rt.config.sign
  if (!cfg.enabled) return pass('not_ours', 'signing is off ([sign] enabled=false)')
  const msg = toCrlf(raw)
  const { head, body } = splitEntity(msg)
  const top = rawFields(head)
  const from = fromFields(top)
  const who = whoSigns({ ...facts, from }, signerScopeFor(rt))
  if (!who.sign) {
    if (who.outcome === 'not_allowed' && facts.login && !facts.verified)
      return failure(rt, 'not_allowed', who.reason, from, opts)
    return pass(who.outcome, who.reason, who.address)
  }
  if (facts.verified || (await signedByPublishedKey(rt, msg, top, who.address)))
    return pass('already_signed', `already signed by ${who.address}`, who.address)
  if (raw.length > cfg.max_message_bytes || facts.truncated)
    return failure(
      rt,
      'error',
      `the message is larger than [sign] max_message_bytes (${cfg.max_message_bytes})`,
      from,
      opts,
      true,
    )
  const store = secretStoreFor(rt)
  const key = await store.signer(who.address)
  if (!key) {
    const why = (await store.problem(who.address)) ?? `no secret key for ${who.address} in ${store.dir}`
    return failure(rt, 'no_key', why, from, opts)
  }
  const r = signParsed(msg, top, body, key, {
    protectedHeaders: cfg.protected_headers,
    date: new Date(rt.now()),
  })
  if (r.kind === 'already_signed') return pass('already_signed', r.reason, who.address)
  if (r.kind === 'broken') return failure(rt, 'error', `broken MIME: ${r.reason}`, from, opts, true)
  return {
    outcome: 'signed',
    verdict: { action: 'continue', reason: 'sign_signed' },
    headers: r.headers,
    body: r.body,
    reason: `signed for ${who.address} (${who.via})`,
    address: who.address,
    fingerprint: key.fingerprint,
  }
}

/**
 * Unsigned mail from a domain that requires signatures is never let out:
 * 451 4.7.0 when retrying may help (no key yet, a fault, the policy not
 * known), 550 5.7.1 when it cannot (a From the login may not use, a message
 * that is too large or too broken to sign). Otherwise it passes, counted.
 */
async function failure(
  rt: Runtime,
  outcome: SignOutcome,
  reason: string,
  from: string[],
  opts: SignStepOptions,
  permanent = outcome === 'not_allowed',
): Promise<SignDecision> {
  const domain = namedDomains(from.slice(0, 1))[0]
  const policy = domain ? await requirement(rt, domain, opts) : 'optional'
  const base = pass(outcome, reason)
  if (policy === 'optional') return base
  const sentence = `${reason}; ${domain} requires signed mail (sig=required)`
  const verdict =
    permanent && policy === 'required'
      ? reject(550, '5.7.1', `${sentence}, so it is not sent`, `sign_${outcome}`)
      : tempfail(451, '4.7.0', `${sentence}, so it is not sent unsigned; try again later`, `sign_${outcome}`)
  return { ...base, verdict }
}

async function requirement(rt: Runtime, domain: string, opts: SignStepOptions): Promise<SignaturePolicy> {
  const lookup = opts.signaturePolicy ?? signaturePolicyFor(rt)
  try {
    return lookup.peek?.(domain) ?? (await lookup(domain, opts.signal))
  } catch {
    return 'unknown'
  }
}

/**
 * Start-up check when signing is on: a secret file others can read, an
 * unreadable senders_file or a bad trusted network stops start-up (exit 78)
 * naming it; no domain to sign for is a mistake too.
 */
export function checkSignSetup(rt: Runtime): void {
  // The domain CA's secret (core/keys/ca.ts) is refused like a signing secret, signing on or not.
  try {
    caStoreFor(rt).assertPrivate()
  } catch (e) {
    throw new ConfigError(e instanceof Error ? e.message : String(e))
  }
  if (!rt.config.sign.enabled) return
  try {
    if (signedDomains(rt.config).size === 0)
      throw new Error('no domain to sign for: set [main] domain or [sign] domains')
    secretStoreFor(rt).assertPrivate()
    signerScopeFor(rt)
  } catch (e) {
    throw new ConfigError(e instanceof Error ? e.message : String(e))
  }
}

/**
 * True when the message is signed at the top by a key this server publishes
 * for the address (a user whose own client signs): linksec's verifier with
 * the local key store says pass. Such mail is left alone, key held or not.
 */
async function signedByPublishedKey(
  rt: Runtime,
  msg: Buffer,
  top: RawField[],
  address: string,
): Promise<boolean> {
  const ct = top.find((f) => f.key === 'content-type')
  if (!ct || !/^content-type:\s*multipart\/signed/i.test(ct.raw)) return false
  const form = findSignedForm(parseEntity(msg))
  if (form.kind !== 'signed' || form.form !== 'pgp-mime') return false
  const ring = await keyStoreFor(rt).lookup(address)
  const sigs = parseSignatureBlock(form.signature)
  if (!ring || !Array.isArray(sigs)) return false
  return (await checkSignatures(form.data, sigs, ring, rt.now())).result === 'pass'
}

/**
 * Whether this message is outgoing mail the sign step decides (From in our
 * domains, from a login or a trusted network), without reading the
 * body: the verify step then leaves it alone, as OpenDKIM verifies only
 * what it does not sign (its own domain's unsigned mail would otherwise
 * meet its own sig=required before it is signed).
 */
export function signsOutgoing(rt: Runtime, facts: SubmissionFacts): boolean {
  if (!rt.config.sign.enabled) return false
  const d = whoSigns(facts, signerScopeFor(rt))
  // A login claiming one of our From addresses it may not use is the signer's to refuse, in its words.
  return d.sign || (Boolean(facts.login) && d.outcome === 'not_allowed')
}
