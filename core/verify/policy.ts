/**
 * From a signature result to what the client is told (docs/architecture.md §6.4, [verify]):
 * fail -> 550 5.7.1 (or quarantine, or tag); unsigned or uncheckable mail
 * from a domain declaring sig=required -> 550 5.7.1; temperror -> 451 4.7.5
 * when a signature is present or required, otherwise tag and accept.
 * A pass by a key that changed without explanation (core/verify/continuity.ts)
 * follows [verify] on_key_change: tag, tempfail (451 4.7.1), reject (550 5.7.1).
 * Every reject names the sender and the reason in words.
 */
import { addressDomain } from '../address'
import type { LinksecConfig } from '../config'
import { CONTINUE, reject, tempfail, type Verdict } from '../verdict'
import type { ResultFacts } from './authres'
import type { SignaturePolicy } from './sig-policy'

export interface PolicyInput {
  facts: ResultFacts
  /** The message carries a signature (checkable or not). */
  signed: boolean
  /** The sender domain's declaration, when it was needed. */
  requirement?: SignaturePolicy
  /** The From domain whose record says sig=required. */
  requiredBy?: string
}

type Action = LinksecConfig['verify']['on_fail']

export function decide(cfg: LinksecConfig, input: PolicyInput): Verdict {
  const { facts } = input
  const who = facts.from ?? 'the sender'
  switch (facts.result) {
    case 'pass':
      return facts.keyChange
        ? keyChanged(cfg.verify.on_key_change, who, facts.keyChange.previous, facts.fingerprint)
        : CONTINUE
    case 'fail':
      return apply(
        cfg.verify.on_fail,
        `the OpenPGP signature of this message from ${who} is not valid: ${facts.reason}`,
        'signature_fail',
      )
    case 'temperror':
      if (!input.signed && input.requirement !== 'required') return CONTINUE
      return tempfail(
        451,
        '4.7.5',
        `the OpenPGP signature of this message from ${who} could not be checked now (${facts.reason}); please try again later`,
        'signature_temperror',
      )
    default:
      if (input.requirement !== 'required') return CONTINUE
      return apply(
        cfg.verify.on_missing_required,
        `${input.requiredBy ?? addressDomain(who) ?? who} declares that all its mail is OpenPGP-signed (sig=required), but this message from ${who} ${
          facts.result === 'none' ? 'is not signed' : `has no signature that can be checked (${facts.reason})`
        }`,
        'signature_missing_required',
      )
  }
}

function keyChanged(
  action: LinksecConfig['verify']['on_key_change'],
  who: string,
  previous: string,
  current: string | undefined,
): Verdict {
  if (action === 'tag') return { ...CONTINUE, reason: 'key_change_tagged' }
  const text =
    `the OpenPGP key of ${who} changed (from ${previous} to ${current ?? 'another key'}) ` +
    'without a certification by its domain CA or the old key published beside the new one'
  if (action === 'tempfail')
    return tempfail(
      451,
      '4.7.1',
      `${text}; please try again later, or ask the sender's domain to certify the new key`,
      'key_change',
    )
  return reject(550, '5.7.1', text, 'key_change')
}

function apply(action: Action, text: string, reason: string): Verdict {
  if (action === 'reject') return reject(550, '5.7.1', text, reason)
  if (action === 'quarantine') return { action: 'quarantine', text, reason }
  return { ...CONTINUE, reason: `${reason}_tagged` }
}
