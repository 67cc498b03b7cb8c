/**
 * Web Key Service (draft-koch-openpgp-webkey-service §4): users publish
 * their own key by mail. A message to `<[wks] local_part>@<our domain>` is
 * either a submission (a key) or a confirmation response (a nonce):
 *
 *   submission   From one of our domains, a key with a user ID for that
 *                From, usable now -> kept pending (bounded, per address),
 *                and a confirmation request goes to the address
 *   response     the nonce of a pending submission, for the same address ->
 *                the key is certified by the domain CA (when there is one,
 *                core/keys/ca.ts) and published over WKD; an address that
 *                already has a key gets it as a rotation (core/keys/store.ts)
 *
 * Anything else is refused with a reason, counted in
 * linksec_wks_messages_total{outcome}, and publishes nothing. Both adapters
 * reach this through the message pipeline's wks step (core/message/wks.ts);
 * `linksec wks receive` through the command line.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import type * as openpgp from 'openpgp'
import { configPath } from '../config'
import { describeError } from '../errors'
import { caStoreFor, fromAddress, keyStoreFor, parseAddress, type StoredKey } from '../keys'
import { keyFilePath } from '../keys/store'
import { readKeyBlob, ringFor } from '../keys/material'
import { headerValue, parseEntity, toCrlf } from '../mime'
import type { Runtime } from '../runtime'
import { signingKeyFrom } from '../sign'
import { readSecretKey } from '../sign/secrets'
import { mail } from '../tlsrpt/deliver'
import { engineService, sectionsKey } from '../engine'
import { confirmationRequest, readWksContent } from './mail'
import { submissionAddress, submissionDomain, wksDomains } from './names'
import { PendingStore } from './pending'

export { submissionAddress, submissionDomain, wksDomains } from './names'

export type WksRefusal =
  | 'not_submission_address'
  | 'no_submission_key'
  | 'bad_message'
  | 'foreign_domain'
  | 'no_address'
  | 'bad_key'
  | 'pending_full'
  | 'rate_limited'
  | 'unknown_nonce'
  | 'mismatch'

export type WksResult =
  | { outcome: 'confirmation_sent'; address: string; fingerprint: string; reply: OutgoingMail }
  | { outcome: 'published'; address: string; fingerprint: string; stored: StoredKey }
  | { outcome: WksRefusal; reason: string }

export interface OutgoingMail {
  from: string
  to: string
  raw: Buffer
}

export const pendingStoreFor = engineService({
  name: 'wks-pending',
  key: (c) => sectionsKey(c, ['wks']),
  build: (rt) =>
    new PendingStore(
      configPath(rt.config, rt.config.wks.pending_dir),
      {
        max: rt.config.wks.pending_max,
        perAddress: rt.config.wks.per_address,
        ttlMs: rt.config.wks.pending_ttl * 1000,
      },
      rt.now,
    ),
})

/** The submission key's secret (`[sign] secret_dir`/<submission address>.key), or undefined. */
export async function submissionKey(rt: Runtime, domain: string): Promise<openpgp.PrivateKey | undefined> {
  const file = keyFilePath(
    configPath(rt.config, rt.config.sign.secret_dir),
    submissionAddress(rt, domain),
    '.key',
  )
  if (!fs.existsSync(file)) return undefined
  return readSecretKey(fs.readFileSync(file))
}

const refuse = (outcome: WksRefusal, reason: string): WksResult => ({ outcome, reason })

/** Handles one message sent to `to` (a submission address); counts the outcome. */
export async function receiveWks(rt: Runtime, raw: Buffer, to: string): Promise<WksResult> {
  const r = await receive(rt, raw, to).catch((e: unknown) =>
    refuse('bad_message', `the message could not be read (${describeError(e)})`),
  )
  rt.metrics.wksSubmissions.inc({ outcome: r.outcome })
  const fields =
    'reason' in r
      ? { outcome: r.outcome, reason: r.reason }
      : { outcome: r.outcome, address: r.address, fingerprint: r.fingerprint }
  if ('reason' in r) rt.log.warn('wks message refused', fields)
  else rt.log.info('wks message', fields)
  return r
}

async function receive(rt: Runtime, raw: Buffer, to: string): Promise<WksResult> {
  const domain = submissionDomain(rt, to)
  if (!domain) return refuse('not_submission_address', `${to} is not a submission address of this server`)
  const key = await submissionKey(rt, domain)
  if (!key)
    return refuse(
      'no_submission_key',
      `there is no submission key for ${domain} yet (linksec wks init ${domain})`,
    )
  const head = parseEntity(toCrlf(raw)).headers
  const from = fromAddress(headerValue(head, 'from') ?? '')
  const content = await readWksContent(raw, key)
  if (content.kind === 'bad') return refuse('bad_message', `not a Web Key Service message: ${content.reason}`)
  if (content.kind === 'key') return submission(rt, domain, key, from?.address, content.data)
  return confirmation(rt, domain, from?.address, content.fields)
}

async function submission(
  rt: Runtime,
  domain: string,
  subKey: openpgp.PrivateKey,
  from: string | undefined,
  data: Buffer,
): Promise<WksResult> {
  const a = from ? parseAddress(from) : undefined
  if (!a) return refuse('bad_message', 'the submission has no From address (the key is published for it)')
  if (!wksDomains(rt).has(a.domain))
    return refuse('foreign_domain', `${a.domain} is not a domain this server publishes keys for`)
  const keys = await readKeyBlob(data).catch(() => [])
  if (keys.length !== 1)
    return refuse('bad_key', `the submission must hold exactly one OpenPGP key (it holds ${keys.length})`)
  const ring = ringFor(a.address, keys)
  const key = ring.keys[0]
  if (!key)
    return refuse('no_address', `the key has no user ID for ${a.address}, the address it was sent from`)
  const now = new Date(rt.now())
  const usable = await key.getEncryptionKey(undefined, now, { email: a.address }).catch((e: unknown) => e)
  if (usable instanceof Error)
    return refuse('bad_key', `the key for ${a.address} cannot be used now (${usable.message})`)
  const fingerprint = key.getFingerprint().toUpperCase()
  const added = pendingStoreFor(rt).add({ address: a.address, fingerprint, key: ring.binary })
  if (!added.ok)
    return refuse(
      added.outcome,
      added.outcome === 'pending_full'
        ? 'too many submissions are waiting for their confirmation; try again later'
        : `${a.address} already has ${rt.config.wks.per_address} submissions waiting; answer one or wait`,
    )
  const sa = submissionAddress(rt, domain)
  const raw = await confirmationRequest({
    submissionAddress: sa,
    address: a.address,
    fingerprint,
    nonce: added.nonce,
    key,
    signer: await signingKeyFrom(subKey, sa, now),
    date: now,
    hostname: rt.config.main.authserv_id || os.hostname(),
  })
  return {
    outcome: 'confirmation_sent',
    address: a.address,
    fingerprint,
    reply: { from: sa, to: a.address, raw },
  }
}

async function confirmation(
  rt: Runtime,
  domain: string,
  from: string | undefined,
  fields: Map<string, string>,
): Promise<WksResult> {
  if (fields.get('type') !== 'confirmation-response')
    return refuse(
      'bad_message',
      `a Web Key Service message of type "${fields.get('type') ?? 'none'}"; expected a confirmation-response`,
    )
  const pending = pendingStoreFor(rt).take(fields.get('nonce') ?? '')
  if (!pending)
    return refuse(
      'unknown_nonce',
      'no submission waits for this nonce (already confirmed, expired, or never sent)',
    )
  const sa = submissionAddress(rt, domain)
  // Addresses compare case-insensitively here: clients lower-case them (gpg-wks-client's addr-spec).
  const want = pending.address.toLowerCase()
  const same = (v: string | undefined) => (v ?? '').toLowerCase() === want
  if (
    !same(fields.get('address')) ||
    (fields.get('sender') ?? '').toLowerCase() !== sa.toLowerCase() ||
    !same(from)
  )
    return refuse('mismatch', `the confirmation does not match the submission for ${pending.address}`)
  const keys = await readKeyBlob(pending.key)
  const certified = Buffer.concat(
    await Promise.all(keys.map(async (k) => Buffer.from((await caStoreFor(rt).certify(k)).write()))),
  )
  const store = keyStoreFor(rt)
  const stored = (await store.lookup(pending.address))
    ? await store.rotate(certified, pending.address, rt.config.keys.rotation_overlap * 1000)
    : await store.add(certified, pending.address)
  return { outcome: 'published', address: pending.address, fingerprint: pending.fingerprint, stored }
}

/** Sends a confirmation request through `[wks] relay`. */
export async function sendWksMail(rt: Runtime, m: OutgoingMail): Promise<void> {
  const [host, port] = rt.config.wks.relay.split(/:(?=\d+$)/)
  const settings = {
    relayHost: host!.replace(/^\[|\]$/g, ''),
    relayPort: Number(port ?? 25),
    from: m.from,
    submitter: rt.config.main.authserv_id || os.hostname(),
  }
  await mail(settings, m.to, m.raw.toString('latin1'), rt.config.net.timeout_ms)
}
