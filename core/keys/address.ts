/**
 * Mail addresses as key discovery sees them: the one mailbox of a From
 * field, split into local part and domain. WKD and OPENPGPKEY hash the local
 * part differently (draft-koch-openpgp-webkey-service §3.1, RFC 7929 §3), so
 * both keep the original form.
 *
 * This is the tree's one mailbox parser (RFC 5322 §3.4 with RFC 6532 UTF-8):
 * a From field's value is a mailbox only when the whole value is exactly one
 * `addr-spec` or one `[display-name] <addr-spec>`. A second angle-address,
 * a display name that is not a phrase, a list, a group or any stray
 * character makes it "not exactly one mailbox" (undefined): who signed
 * would then depend on which part the reader's client shows.
 */

export interface MailAddress {
  /** Local part exactly as written (quotes removed). */
  local: string
  /** Domain, lower-cased, no trailing dot. */
  domain: string
  /** `local@domain` with the domain lower-cased. */
  address: string
}

type Token =
  | { t: 'atom'; v: string }
  | { t: 'quoted'; v: string }
  | { t: 'literal'; v: string }
  | { t: 'special'; v: string }

/** RFC 5322 §3.2.3 atext, plus any non-ASCII character (RFC 6532 §3.2). */
const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\uFFFF]/
const SPECIALS = new Set(['<', '>', '@', ',', ';', ':', '.'])
/** Controls other than HTAB, and DEL: never part of an address or a phrase. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/
/** A generous bound: a From field longer than this is not a mailbox anyone reads. */
const MAX_FIELD = 2048

/**
 * Splits a field value into RFC 5322 lexical tokens, dropping CFWS (nested
 * comments included). Undefined on anything the grammar does not allow:
 * unbalanced quotes, comments or brackets, a control character, a stray `\`.
 */
function tokenize(s: string): Token[] | undefined {
  if (s.length > MAX_FIELD || CONTROL.test(s.replace(/\r\n(?=[ \t])/g, ''))) return undefined
  const out: Token[] = []
  let i = 0
  while (i < s.length) {
    const c = s[i]!
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') i++
    else if (c === '(') {
      let depth = 0
      for (; i < s.length; i++) {
        const d = s[i]!
        if (d === '\\') i++
        else if (d === '(') depth++
        else if (d === ')' && --depth === 0) break
      }
      if (depth !== 0) return undefined
      i++
    } else if (c === '"') {
      let v = ''
      for (i++; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === '\\') i++
        if (i < s.length) v += s.charAt(i)
      }
      if (i >= s.length) return undefined
      i++
      out.push({ t: 'quoted', v })
    } else if (c === '[') {
      const end = s.indexOf(']', i)
      if (end === -1 || /[[\\]/.test(s.slice(i + 1, end))) return undefined
      out.push({ t: 'literal', v: s.slice(i, end + 1) })
      i = end + 1
    } else if (SPECIALS.has(c)) {
      out.push({ t: 'special', v: c })
      i++
    } else if (ATEXT.test(c)) {
      let v = ''
      while (i < s.length && ATEXT.test(s.charAt(i))) v += s.charAt(i++)
      out.push({ t: 'atom', v })
    } else return undefined
  }
  return out
}

const isWord = (x: Token | undefined) => x?.t === 'atom' || x?.t === 'quoted'
const isSpecial = (x: Token | undefined, v: string) => x?.t === 'special' && x.v === v

/** `local-part "@" domain` from exactly these tokens (RFC 5322 §3.4.1, obs-local-part allowed). */
function addrSpec(tokens: Token[]): MailAddress | undefined {
  const at = tokens.findIndex((x) => isSpecial(x, '@'))
  if (at <= 0) return undefined
  const localToks = tokens.slice(0, at)
  const domainToks = tokens.slice(at + 1)
  // local-part: word *("." word)
  let local = ''
  for (let i = 0; i < localToks.length; i++) {
    const x = localToks[i]!
    if (i % 2 === 0 ? !isWord(x) : !isSpecial(x, '.')) return undefined
    local += x.v
  }
  if (localToks.length % 2 === 0) return undefined
  // domain: atom *("." atom), one trailing dot tolerated (a root-anchored name)
  if (domainToks.length > 1 && isSpecial(domainToks.at(-1), '.')) domainToks.pop()
  let domain = ''
  for (let i = 0; i < domainToks.length; i++) {
    const x = domainToks[i]!
    if (i % 2 === 0 ? x.t !== 'atom' : !isSpecial(x, '.')) return undefined
    domain += x.v
  }
  if (domainToks.length % 2 === 0) return undefined
  return checked(local, domain.toLowerCase())
}

const HOSTNAME = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/

function checked(local: string, domain: string): MailAddress | undefined {
  // A domain that can publish a key: a host name of at least two labels (no literal, no IDN U-label).
  if (domain.length > 253 || !HOSTNAME.test(domain)) return undefined
  if (local === '' || Buffer.byteLength(local, 'utf8') > 64 || /[\x00-\x1f\x7f]/.test(local)) return undefined
  return { local, domain, address: `${local}@${domain}` }
}

/** Parses `local@domain` (an addr-spec, nothing around it); undefined otherwise. */
export function parseAddress(addr: string): MailAddress | undefined {
  const tokens = tokenize(addr)
  return tokens ? addrSpec(tokens) : undefined
}

/** Key-matching form: the whole address lower-cased (user IDs are compared this way). */
export function addressKey(addr: MailAddress | string): string {
  return (typeof addr === 'string' ? addr : addr.address).toLowerCase()
}

/**
 * The single mailbox of a From field value (RFC 5322 §3.4, §3.6.2):
 * `addr-spec`, or `[phrase] "<" [obs-route] addr-spec ">"`. Undefined for
 * none, several mailboxes, groups, or anything else.
 */
export function fromAddress(value: string): MailAddress | undefined {
  const tokens = tokenize(value)
  if (!tokens || tokens.length === 0) return undefined
  const open = tokens.findIndex((x) => isSpecial(x, '<'))
  if (open === -1) return addrSpec(tokens)
  // name-addr: the angle-addr ends the value, and there is exactly one.
  if (!isSpecial(tokens.at(-1), '>')) return undefined
  const inner = tokens.slice(open + 1, -1)
  if (inner.some((x) => isSpecial(x, '<') || isSpecial(x, '>'))) return undefined
  if (!isPhrase(tokens.slice(0, open))) return undefined
  return addrSpec(withoutRoute(inner))
}

/** display-name = phrase: words, with obs-phrase's "." after the first word; may be absent. */
function isPhrase(tokens: Token[]): boolean {
  if (tokens.length === 0) return true
  if (!isWord(tokens[0])) return false
  return tokens.every((x) => isWord(x) || isSpecial(x, '.'))
}

/** RFC 5322 §4.4 obs-route `@a.example,@b.example:` before the addr-spec: dropped. */
function withoutRoute(tokens: Token[]): Token[] {
  if (!isSpecial(tokens[0], '@')) return tokens
  const colon = tokens.findIndex((x) => isSpecial(x, ':'))
  if (colon === -1) return tokens
  const route = tokens.slice(0, colon)
  for (let i = 0; i < route.length;) {
    if (isSpecial(route[i], ',')) {
      i++
      continue
    }
    if (!isSpecial(route[i], '@')) return []
    i++
    while (i < route.length && (route[i]!.t === 'atom' || isSpecial(route[i], '.'))) i++
  }
  return tokens.slice(colon + 1)
}
