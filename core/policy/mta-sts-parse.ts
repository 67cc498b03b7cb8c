/**
 * MTA-STS (RFC 8461) text formats: the `_mta-sts` TXT record, the policy
 * file, and MX pattern matching. Pure: strings in, values or a reason out.
 */
import type { Parsed } from '../levels'
import { normalizeDomain } from './domain'

export type StsMode = 'enforce' | 'testing' | 'none'

export interface StsPolicy {
  mode: StsMode
  /** Patterns as published: `mx.example.com` or `*.example.com` (lower case). */
  mx: string[]
  maxAgeSeconds: number
}

/** RFC 8461 §3.2: max_age is at most 31557600 (about a year). */
export const MAX_STS_MAX_AGE = 31_557_600
/** More MX lines than this is hostile, not a mail setup; it would also overflow a socketmap reply. */
const MAX_STS_MX_PATTERNS = 64

const fail = <T>(reason: string): Parsed<T> => ({ ok: false, reason })

/**
 * RFC 8461 §3.1: of the TXT records at `_mta-sts.<domain>`, those starting
 * `v=STSv1;` count; exactly one must remain. Returns undefined when none is
 * there (no MTA-STS), a reason when what is there is unusable.
 */
export function parseStsTxt(records: readonly string[]): Parsed<{ id: string }> | undefined {
  const ours = records.filter((r) => /^v=STSv1;/.test(r) || r === 'v=STSv1')
  if (ours.length === 0) return undefined
  if (ours.length > 1) return fail('multiple_records')
  let id: string | undefined
  for (const field of ours[0]!.split(';').slice(1)) {
    const m = /^[ \t]*([A-Za-z][A-Za-z0-9_.-]*)=([\x21-\x3a\x3c\x3e-\x7e]+)[ \t]*$/.exec(field)
    if (!m) {
      if (field.trim() === '') continue
      return fail('malformed_field')
    }
    if (m[1] === 'id' && id === undefined) id = m[2]
  }
  if (id === undefined) return fail('missing_id')
  if (!/^[A-Za-z0-9]{1,32}$/.test(id)) return fail('bad_id')
  return { ok: true, value: { id } }
}

/** A pattern is a host name, or `*.` and a domain (RFC 8461 §4.1: wildcard only as the whole left-most label). */
export function normalizeMxPattern(pattern: string): string | undefined {
  const p = pattern.trim().toLowerCase().replace(/\.$/, '')
  if (p.startsWith('*.')) {
    const rest = normalizeDomain(p.slice(2))
    return rest ? `*.${rest}` : undefined
  }
  return normalizeDomain(p)
}

/**
 * RFC 8461 §3.2 policy file: `key: value` lines, CRLF or LF. version and mode
 * required, max_age required, mx required unless mode is none. The first of a
 * duplicated non-mx key wins; unknown keys are ignored.
 */
export function parseStsPolicy(body: string): Parsed<StsPolicy> {
  const fields = new Map<string, string>()
  const mx: string[] = []
  for (const line of body.split(/\r?\n/)) {
    if (line.trim() === '') continue
    const m = /^([A-Za-z0-9_.-]+)[ \t]*:[ \t]*(.*?)[ \t]*$/.exec(line)
    if (!m) return fail('malformed_line')
    const key = m[1]!
    if (key === 'mx') {
      const p = normalizeMxPattern(m[2]!)
      if (!p) return fail('bad_mx_pattern')
      mx.push(p)
    } else if (!fields.has(key)) fields.set(key, m[2]!)
  }
  if (fields.get('version') !== 'STSv1') return fail('bad_version')
  const mode = fields.get('mode')
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return fail('bad_mode')
  const maxAge = fields.get('max_age')
  if (maxAge === undefined || !/^\d{1,10}$/.test(maxAge)) return fail('bad_max_age')
  if (mode !== 'none' && mx.length === 0) return fail('missing_mx')
  if (mx.length > MAX_STS_MX_PATTERNS) return fail('too_many_mx')
  const maxAgeSeconds = Math.min(Number(maxAge), MAX_STS_MAX_AGE)
  return { ok: true, value: { mode, mx: [...new Set(mx)], maxAgeSeconds } }
}

/**
 * Does HOST match one of the patterns? `*.example.com` matches exactly one
 * more label (RFC 8461 §4.1); the static list's `.example.com`
 * (STARTTLS-Everywhere shape, Postfix `match=` semantics) matches any depth
 * below it; anything else the name itself. Case and a trailing dot do not
 * count. Undefined when there is no pattern (nothing to match against).
 */
export function mxMatches(host: string, patterns: readonly string[]): boolean | undefined {
  if (patterns.length === 0) return undefined
  const h = host.toLowerCase().replace(/\.$/, '')
  return patterns.some((pattern) => {
    const p = pattern.toLowerCase().replace(/\.$/, '')
    if (p.startsWith('*.')) {
      const dot = h.indexOf('.')
      return dot > 0 && h.slice(dot + 1) === p.slice(2)
    }
    if (p.startsWith('.')) return h.endsWith(p) && h.length > p.length
    return h === p
  })
}
