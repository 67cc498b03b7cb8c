/**
 * The domain of a mail address as an envelope or a header writes it:
 * `<Alice@Example.ORG>` -> `example.org`. The one spelling every part uses
 * (decision lines, recipient checks, signature policy sentences); key
 * discovery parses addresses strictly on its own (core/keys/address.ts).
 */

/** Lower-cased, without angle brackets, blanks or a trailing dot; undefined for `<>` or no `@`. */
export function addressDomain(address: string): string | undefined {
  const at = address.lastIndexOf('@')
  if (at < 0) return undefined
  const d = address
    .slice(at + 1)
    .replace(/>.*$/s, '')
    .trim()
    .replace(/\.$/, '')
    .toLowerCase()
  return d || undefined
}
