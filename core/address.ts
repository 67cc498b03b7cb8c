/**
 * The domain of a mail address, in the one spelling every part compares and
 * logs (decision lines, recipient checks, signature policies, the signer's
 * own domains). Key discovery parses whole mailboxes strictly on its own
 * (core/keys/address.ts) and yields the same spelling for the names it accepts.
 *
 * The rule (docs/architecture.md §2): surrounding blanks and one trailing dot
 * (a root-anchored name) dropped; an internationalised name turned into its
 * A-labels (UTS #46 via node:url `domainToASCII`, as DNS, Haraka's
 * envelope addresses and Postfix's SMTPUTF8 lookups spell it, RFC 5890);
 * then lower-cased. A name that does not convert is only lower-cased (it is
 * refused later by whoever needs a valid host name, e.g. core/policy/domain.ts).
 */
import { domainToASCII } from 'node:url'

const NON_ASCII = /[^\x00-\x7f]/

/** A domain as written -> the one spelling above; undefined when nothing is left. */
export function mailDomain(name: string): string | undefined {
  const trimmed = name.trim().replace(/\.$/, '')
  const ascii = NON_ASCII.test(trimmed) ? domainToASCII(trimmed) || trimmed : trimmed
  const d = ascii.toLowerCase()
  return d || undefined
}

/** `<Alice@Example.ORG>` -> `example.org`; undefined for `<>` or no `@`. */
export function addressDomain(address: string): string | undefined {
  const at = address.lastIndexOf('@')
  if (at < 0) return undefined
  return mailDomain(address.slice(at + 1).replace(/>.*$/s, ''))
}

/** What follows an "@" up to a character no domain holds. */
const AFTER_AT = /@([^\s<>()[\]\\,;:"@]+)/g
/** The host name at the start of a converted domain: LDH labels, at least two. */
const HOST_PREFIX = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)+/

/**
 * Every domain named after an "@" in header field values, in first-seen
 * order, without duplicates. A From field may hold several mailboxes, a
 * group, or a display name that is itself an address: a reader may see any
 * of them, so none may hide a domain. Each is spelled by the rule above and
 * cut to the host name it starts with (`a.example_x` names `a.example`), so
 * junk after a name never hides the name.
 */
export function namedDomains(values: readonly string[]): string[] {
  const out = new Set<string>()
  for (const v of values) {
    for (const m of v.matchAll(AFTER_AT)) {
      const host = HOST_PREFIX.exec(mailDomain(m[1]!) ?? '')?.[0]
      if (host) out.add(host)
    }
  }
  return [...out]
}
