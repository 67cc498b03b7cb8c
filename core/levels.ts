/**
 * Link-security levels (docs/architecture.md §6.1) and the wire forms that carry them: the
 * EHLO keyword, the smtpd_banner token, the `_linksec` TXT record and the
 * message tags (Link-Security-Required, TLS-Required). Pure parse/format.
 */
export type Level = 0 | 1 | 2 | 3 | 4
const MAX_LEVEL: Level = 4
/** A declared ttl is clamped to this (one week); longer promises are not believed. */
export const MAX_TTL_SECONDS = 7 * 24 * 3600

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string }

export interface Declaration {
  level: Level
  ttlSeconds: number
}

export interface TxtDeclaration extends Declaration {
  signatures: 'required' | 'optional'
  /**
   * `ca=`: the fingerprint (upper-case hex) of the domain CA whose
   * certification the domain's keys carry (core/keys/ca.ts); absent when none is declared.
   */
  ca?: string
}

export function isLevel(n: number): n is Level {
  return Number.isInteger(n) && n >= 0 && n <= MAX_LEVEL
}

function parseLevel(s: string | undefined): Level | undefined {
  if (s === undefined || !/^[0-4]$/.test(s)) return undefined
  return Number(s) as Level
}

function parseTtl(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,10}$/.test(s)) return undefined
  return Math.min(Number(s), MAX_TTL_SECONDS)
}

const fail = <T>(reason: string): Parsed<T> => ({ ok: false, reason })

// ---------------------------------------------------------------- EHLO keyword

const EHLO_KEYWORD = 'LINKSEC'

/** `LINKSEC 3 ttl=86400` — the text after `250-` / `250 `. */
export function formatEhloKeyword(d: Declaration): string {
  return `${EHLO_KEYWORD} ${d.level} ttl=${d.ttlSeconds}`
}

/** Parses one EHLO keyword line (without the 250 prefix); undefined if it is another keyword. */
export function parseEhloKeyword(line: string): Parsed<Declaration> | undefined {
  const words = line.trim().split(/\s+/)
  if (words[0]?.toUpperCase() !== EHLO_KEYWORD) return undefined
  const level = parseLevel(words[1])
  if (level === undefined) return fail('bad_level')
  const ttlWord = words.slice(2).find((w) => /^ttl=/i.test(w))
  const ttl = parseTtl(ttlWord?.slice(4))
  if (ttl === undefined) return fail('bad_ttl')
  return { ok: true, value: { level, ttlSeconds: ttl } }
}

/** Finds the LINKSEC declaration among all EHLO response lines. */
export function findEhloDeclaration(lines: readonly string[]): Parsed<Declaration> | undefined {
  for (const raw of lines) {
    const line = raw.replace(/^\d{3}[ -]/, '')
    const parsed = parseEhloKeyword(line)
    if (parsed) return parsed
  }
  return undefined
}

// ---------------------------------------------------------------- banner token

/** `LINKSEC=3` anywhere in a 220 greeting (Postfix cannot add EHLO keywords). */
export function parseBannerToken(banner: string): Parsed<Declaration> | undefined {
  const m = /(?:^|\s)LINKSEC=(\S+)/i.exec(banner)
  if (!m) return undefined
  const [levelText, ttlText] = m[1]!.split(/[,;]ttl=/i)
  const level = parseLevel(levelText)
  if (level === undefined) return fail('bad_level')
  // A banner carries no ttl by default; it is only trusted for the session.
  const ttl = ttlText === undefined ? 0 : parseTtl(ttlText)
  if (ttl === undefined) return fail('bad_ttl')
  return { ok: true, value: { level, ttlSeconds: ttl } }
}

// ---------------------------------------------------------------- DNS TXT

const TXT_VERSION = 'LINKSEC1'

export function txtRecordName(domain: string): string {
  return `_linksec.${domain.replace(/\.$/, '').toLowerCase()}`
}

export function formatTxtRecord(d: TxtDeclaration): string {
  const ca = d.ca ? `; ca=${d.ca}` : ''
  return `v=${TXT_VERSION}; level=${d.level}; ttl=${d.ttlSeconds}; sig=${d.signatures}${ca}`
}

/**
 * Parses the record text (multi-string TXT joined without separator). Tags are
 * `;`-separated `k=v`; unknown tags are ignored, a duplicate tag is an error.
 */
export function parseTxtRecord(text: string): Parsed<TxtDeclaration> {
  const tags = new Map<string, string>()
  const parts = text.split(';').map((p) => p.trim())
  if (parts[parts.length - 1] === '') parts.pop()
  for (const part of parts) {
    const eq = part.indexOf('=')
    if (eq <= 0) return fail('malformed_tag')
    const key = part.slice(0, eq).trim().toLowerCase()
    if (tags.has(key)) return fail('duplicate_tag')
    tags.set(key, part.slice(eq + 1).trim())
  }
  if (parts.length === 0 || !/^v=/i.test(parts[0]!)) return fail('not_first_v')
  if (tags.get('v') !== TXT_VERSION) return fail('bad_version')
  const level = parseLevel(tags.get('level'))
  if (level === undefined) return fail('bad_level')
  const ttl = parseTtl(tags.get('ttl') ?? '3600')
  if (ttl === undefined) return fail('bad_ttl')
  const sig = (tags.get('sig') ?? 'optional').toLowerCase()
  if (sig !== 'required' && sig !== 'optional') return fail('bad_sig')
  const caText = tags.get('ca')
  if (caText === undefined) return { ok: true, value: { level, ttlSeconds: ttl, signatures: sig } }
  // A v4 (40 hex) or v6 (64 hex) OpenPGP fingerprint (RFC 9580 §5.5.4).
  if (!/^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$/.test(caText)) return fail('bad_ca')
  return { ok: true, value: { level, ttlSeconds: ttl, signatures: sig, ca: caText.toUpperCase() } }
}

/** Of several TXT strings at `_linksec.<d>`, exactly one must be ours. */
export function pickTxtRecord(records: readonly string[]): Parsed<TxtDeclaration> | undefined {
  const ours = records.filter((r) => /^\s*v\s*=\s*LINKSEC/i.test(r))
  if (ours.length === 0) return undefined
  if (ours.length > 1) return fail('multiple_records')
  return parseTxtRecord(ours[0]!)
}

// ---------------------------------------------------------------- message tags

export const REQUIREMENT_HEADER = 'Link-Security-Required'
export const TLS_REQUIRED_HEADER = 'TLS-Required'
export const FALLBACK_HEADER = 'Link-Security-Fallback'

/** `Link-Security-Required: N` with N in 1..4; comments in parentheses are allowed. */
export function parseRequirementHeader(value: string): Parsed<Level> {
  const v = value.replace(/\([^)]*\)/g, '').trim()
  if (!/^[1-4]$/.test(v)) return fail('bad_requirement')
  return { ok: true, value: Number(v) as Level }
}

/** RFC 8689 §5: only the value "No" is defined. */
function isTlsRequiredNo(value: string): boolean {
  return value.trim().toLowerCase() === 'no'
}

/**
 * What a message requires of every hop, from its tags. REQUIRETLS counts as
 * level 3 plus a verified certificate (docs/architecture.md §6.3).
 */
export interface Requirement {
  level: Level
  requireTls: boolean
  verifiedCertificate: boolean
  /** TLS-Required: No — never bounce this message for lack of TLS. */
  tlsOptional: boolean
  source: 'header' | 'requiretls' | 'none'
}

/** The level a message required, as decision lines write it (`link_level`): 1..4, "requiretls", or undefined untagged. */
export function requiredLevel(req: Requirement): number | string | undefined {
  if (req.source === 'requiretls') return 'requiretls'
  return req.level || undefined
}

export const NO_REQUIREMENT: Requirement = Object.freeze({
  level: 0,
  requireTls: false,
  verifiedCertificate: false,
  tlsOptional: false,
  source: 'none',
})

export function messageRequirement(input: {
  requiretlsParam: boolean
  requirementHeaders: readonly string[]
  tlsRequiredHeaders: readonly string[]
}): Requirement {
  let level: Level = 0
  for (const h of input.requirementHeaders) {
    const p = parseRequirementHeader(h)
    // A malformed tag is read as the strictest level: the sender asked for care.
    const n = p.ok ? p.value : MAX_LEVEL
    if (n > level) level = n
  }
  if (input.requiretlsParam) {
    // RFC 8689 §4.1: with REQUIRETLS, a TLS-Required header is ignored.
    const l = Math.max(level, 3) as Level
    return { level: l, requireTls: true, verifiedCertificate: true, tlsOptional: false, source: 'requiretls' }
  }
  const tlsOptional = input.tlsRequiredHeaders.some(isTlsRequiredNo)
  if (level === 0) return { ...NO_REQUIREMENT, tlsOptional }
  return { level, requireTls: true, verifiedCertificate: level >= 4, tlsOptional, source: 'header' }
}

// ---------------------------------------------------------------- our own level

/**
 * What the configuration promises, level by level (docs/architecture.md §6.1):
 * the facts that decide the level this server performs (core/own-level.ts).
 */
export interface LevelPromises {
  configuredLevel: Level
  /** Operator attestation: mailboxes are read only over TLS. */
  mailboxesTlsOnly: boolean
  /** Tagged mail is bounced rather than relayed in the clear. */
  enforceNoDowngrade: boolean
  /** Tagged mail is bounced rather than relayed to a server declaring less. */
  enforcePeerLevel: boolean
}

/** The highest N whose promises are all kept, capped by the configured level. */
export function performedLevel(d: LevelPromises): Level {
  let n: Level = 1 // linksec always attempts TLS to the next hop
  if (d.mailboxesTlsOnly) {
    n = 2
    if (d.enforceNoDowngrade) {
      n = 3
      if (d.enforcePeerLevel) n = 4
    }
  }
  return Math.min(n, d.configuredLevel) as Level
}
