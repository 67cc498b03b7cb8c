/**
 * Whether this configuration signs every sender of a domain, the condition
 * for publishing `sig=required` (receivers then refuse the domain's unsigned
 * mail). It does when signing is on, the domain is signed for, at least one
 * key of the domain signs, and every address of the domain this server
 * knows of (each key it publishes over WKD, each address senders_file
 * names) has a secret key that signs now. Mail that bypasses linksec (a
 * submission service without the milter, another outgoing MTA) cannot be
 * seen from here; `caveat` says so.
 */
import type { LinksecConfig } from '../config'
import { signedDomains } from './step'

export interface DomainKeys {
  /** Addresses of the domain with a published key ([keys] dir). */
  published: readonly string[]
  /** Addresses of the domain with a secret key, and why it cannot sign if it cannot. */
  secrets: readonly { address: string; problem?: string }[]
  /** Addresses of the domain senders_file lets logins use (not @domain wildcards). */
  allowed: readonly string[]
}

export const SIGN_CAVEAT =
  'linksec signs only mail that passes through it: list the milter on every submission service ' +
  '(examples/postfix) or relay through the Haraka plugin; mail sent any other way stays unsigned and is refused by receivers'

/** Why the domain's mail is not all signed; empty when sig=required is honest. */
export function notSigningAll(cfg: LinksecConfig, domain: string, k: DomainKeys): string[] {
  const d = domain.toLowerCase()
  if (!cfg.sign.enabled) return ['signing is off: set [sign] enabled=true']
  if (!signedDomains(cfg).has(d))
    return [`${d} is not signed for: add it to [sign] domains (or [main] domain)`]
  const signing = new Set(k.secrets.filter((s) => !s.problem).map((s) => s.address))
  const out: string[] = []
  if (signing.size === 0) out.push(`no secret key of ${d} can sign: run linksec keys generate ADDRESS@${d}`)
  for (const s of k.secrets) if (s.problem) out.push(`the key of ${s.address} cannot sign: ${s.problem}`)
  const unsigned = [...new Set([...k.published, ...k.allowed])]
    .filter((a) => !k.secrets.some((s) => s.address === a))
    .sort()
  if (unsigned.length)
    out.push(
      `no secret key for ${unsigned.join(', ')}: their mail would be held (451 4.7.0); run linksec keys generate for each`,
    )
  return out
}
