/**
 * Mail addresses as key discovery sees them: the one mailbox of a From
 * field, split into local part and domain. WKD and OPENPGPKEY hash the local
 * part differently (standards.md §3, §4), so both keep the original form.
 */

export interface MailAddress {
  /** Local part exactly as written (quotes removed). */
  local: string
  /** Domain, lower-cased, no trailing dot. */
  domain: string
  /** `local@domain` with the domain lower-cased. */
  address: string
}

/** Parses `local@domain`; undefined when it is not a plain addr-spec. */
export function parseAddress(addr: string): MailAddress | undefined {
  const at = addr.lastIndexOf('@')
  if (at <= 0 || at === addr.length - 1) return undefined
  let local = addr.slice(0, at)
  const domain = addr
    .slice(at + 1)
    .toLowerCase()
    .replace(/\.$/, '')
  if (local.startsWith('"') && local.endsWith('"') && local.length >= 2)
    local = local.slice(1, -1).replace(/\\(.)/g, '$1')
  if (!/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/.test(domain))
    return undefined
  if (local === '' || local.length > 64 || /[\x00-\x1f\x7f]/.test(local)) return undefined
  return { local, domain, address: `${local}@${domain}` }
}

/** Key-matching form: the whole address lower-cased (user IDs are compared this way). */
export function addressKey(addr: MailAddress | string): string {
  return (typeof addr === 'string' ? addr : addr.address).toLowerCase()
}

/**
 * The single mailbox of a From field (RFC 5322 §3.6.2). Returns undefined
 * for none, several mailboxes or groups: who signed is then ambiguous.
 */
export function fromAddress(value: string): MailAddress | undefined {
  const text = stripComments(value).trim()
  if (hasTopLevel(text, ',') || hasTopLevel(text, ';') || hasTopLevel(text, ':')) return undefined
  const angle = /<([^<>]*)>\s*$/.exec(text)
  const spec = angle ? angle[1]!.trim() : text
  if (!angle && /\s/.test(spec.replace(/^"[^"]*"/, ''))) return undefined
  return parseAddress(spec.replace(/^@[^:]*:/, ''))
}

/** Removes (comments), keeping quoted strings intact. */
function stripComments(s: string): string {
  let out = ''
  let depth = 0
  let quoted = false
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!
    if (quoted) {
      out += c
      if (c === '\\') out += s[++i] ?? ''
      else if (c === '"') quoted = false
    } else if (c === '"' && depth === 0) {
      quoted = true
      out += c
    } else if (c === '(') depth++
    else if (c === ')' && depth > 0) depth--
    else if (depth === 0) out += c
  }
  return out
}

/** True when `ch` occurs outside quoted strings and angle brackets. */
function hasTopLevel(s: string, ch: string): boolean {
  let quoted = false
  let angle = 0
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!
    if (quoted) {
      if (c === '\\') i++
      else if (c === '"') quoted = false
    } else if (c === '"') quoted = true
    else if (c === '<') angle++
    else if (c === '>') angle = Math.max(0, angle - 1)
    else if (c === ch && angle === 0) return true
  }
  return false
}
