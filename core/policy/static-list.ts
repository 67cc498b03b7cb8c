/**
 * The operator's static list (docs/architecture.md §6.2): `config/linksec.domains.json` in the
 * shape of the STARTTLS-Everywhere policy list plus a `level`:
 *   {"policies": {"example.net": {"mode": "enforce", "mxs": [".example.net"], "level": 3}},
 *    "policy-aliases": {"big-provider": {"mode": "enforce", "mxs": [".mx.example"]}}}
 * An entry may say {"policy-alias": "big-provider"}, and may pin the domain's
 * CA: {"ca": "<fingerprint>"} (core/keys/ca.ts; the operator's fact, as good
 * as a DNSSEC-validated `ca=`). Entries are operator
 * facts with no expiry, except one `linksec domains import` took from a
 * learned declaration (`linksec-expires`), skipped once that has passed. A
 * broken file stops start-up; a broken entry is skipped, logged and
 * counted, so one typo never disables the whole list.
 */
import * as fs from 'node:fs'
import { ConfigError } from '../errors'
import { isLevel, type Level } from '../levels'
import { normalizeDomain } from './domain'
import { normalizeMxPattern, type StsMode } from './mta-sts-parse'
import type { SourceAnswer } from './types'

export interface StaticEntry {
  mode: StsMode
  /** Patterns as written (`.example.net`, `mx.example.net`, `*.example.net`), lower case. */
  mxs: string[]
  /** Declared level; undefined when the entry gives none. */
  level?: Level
  /** The domain CA's fingerprint (upper-case hex), when pinned. */
  ca?: string
}

export interface StaticList {
  get(domain: string): StaticEntry | undefined
  readonly size: number
}

export interface StaticListProblem {
  domain: string
  reason: string
}

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A value as quoted in a problem: short strings and numbers as JSON, anything else by its kind (never a deep walk). */
function quoted(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v)
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v)
  return Array.isArray(v) ? 'a list' : `a ${typeof v}`
}

/** Validates one entry; returns it or a short reason. */
export function parseStaticEntry(raw: unknown): StaticEntry | string {
  if (!isObject(raw)) return 'entry is not an object'
  const mode = raw.mode ?? 'enforce'
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none')
    return `mode ${quoted(mode)} is not enforce, testing or none`
  const mxsRaw = raw.mxs ?? []
  if (!Array.isArray(mxsRaw)) return 'mxs is not a list'
  const mxs: string[] = []
  for (const m of mxsRaw) {
    const p = typeof m === 'string' ? staticPattern(m) : undefined
    if (!p) return `mx pattern ${quoted(m)} is not a host name, .domain or *.domain`
    mxs.push(p)
  }
  let level: Level | undefined
  if (raw.level !== undefined) {
    if (typeof raw.level !== 'number' || !isLevel(raw.level)) return `level ${quoted(raw.level)} is not 0-4`
    level = raw.level
  }
  if (raw.ca === undefined) return { mode, mxs, level }
  const ca = typeof raw.ca === 'string' ? raw.ca.replace(/\s+/g, '').toUpperCase() : ''
  if (!/^([0-9A-F]{40}|[0-9A-F]{64})$/.test(ca))
    return `ca ${quoted(raw.ca)} is not an OpenPGP fingerprint (40 or 64 hex digits)`
  return { mode, mxs, level, ca }
}

function staticPattern(m: string): string | undefined {
  const s = m.trim().toLowerCase()
  if (s.startsWith('.')) {
    const d = normalizeDomain(s.slice(1))
    return d ? `.${d}` : undefined
  }
  return normalizeMxPattern(s)
}

/** Builds the list from parsed JSON; bad entries are returned as problems. */
export function parseStaticList(
  doc: unknown,
  now = Date.now(),
): { list: StaticList; problems: StaticListProblem[] } {
  if (!isObject(doc) || !isObject(doc.policies ?? {}))
    throw new ConfigError('the static domains list must be a JSON object with a "policies" object')
  const aliases = isObject(doc['policy-aliases']) ? doc['policy-aliases'] : {}
  const entries = new Map<string, StaticEntry>()
  const problems: StaticListProblem[] = []
  for (const [name, raw] of Object.entries((doc.policies ?? {}) as Json)) {
    const domain = normalizeDomain(name)
    if (!domain) {
      problems.push({ domain: name, reason: 'not a domain name' })
      continue
    }
    const resolved = resolveAlias(raw, aliases)
    const entry = 'problem' in resolved ? resolved.problem : parseStaticEntry(resolved.value)
    if (typeof entry === 'string') problems.push({ domain, reason: entry })
    else if (expiredAt(resolved, now))
      problems.push({ domain, reason: `expired (linksec-expires ${expiredAt(resolved, now)})` })
    else entries.set(domain, entry)
  }
  return { list: { get: (d) => entries.get(d), size: entries.size }, problems }
}

/** An entry `linksec domains import` took from a learned declaration ends with it (core/policy/policy-list.ts). */
function expiredAt(resolved: { value: unknown } | { problem: string }, now: number): string | undefined {
  if (!('value' in resolved) || !isObject(resolved.value)) return undefined
  const v = resolved.value['linksec-expires']
  const t = typeof v === 'string' ? Date.parse(v) : NaN
  return t <= now ? (v as string) : undefined
}

function resolveAlias(raw: unknown, aliases: Json): { value: unknown } | { problem: string } {
  if (!isObject(raw) || typeof raw['policy-alias'] !== 'string') return { value: raw }
  // Own properties only: "constructor" or "__proto__" is not an alias.
  const name = raw['policy-alias']
  const target = Object.prototype.hasOwnProperty.call(aliases, name) ? aliases[name] : undefined
  if (target === undefined) return { problem: `unknown policy-alias "${raw['policy-alias']}"` }
  return { value: isObject(target) ? { ...target, ...withoutAlias(raw) } : target }
}

function withoutAlias(raw: Json): Json {
  const { 'policy-alias': _alias, ...rest } = raw
  return rest
}

export const EMPTY_STATIC_LIST: StaticList = { get: () => undefined, size: 0 }

/**
 * Reads the list file. A missing file is an empty list (the key has a
 * default the operator may never have created); unreadable JSON is a
 * ConfigError naming the file.
 */
export function loadStaticList(
  file: string,
  now = Date.now(),
): { list: StaticList; problems: StaticListProblem[] } {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { list: EMPTY_STATIC_LIST, problems: [] }
    throw new ConfigError(`[policy] domains_file ${file} cannot be read: ${(e as Error).message}`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new ConfigError(
      `[policy] domains_file ${file} is not valid JSON (${(e as Error).message}); fix the file or point domains_file elsewhere`,
    )
  }
  try {
    return parseStaticList(doc, now)
  } catch (e) {
    throw new ConfigError(`[policy] domains_file ${file}: ${(e as Error).message}`)
  }
}

/** The static source's answer for the combination (operator facts: no expiry). */
export function staticAnswer(domain: string, list: StaticList): SourceAnswer {
  const e = list.get(domain)
  if (!e) return { source: 'static', outcome: 'none', reason: `${domain} is not in the static domains list` }
  const enforced = e.mode === 'enforce'
  // docs/architecture.md §6.2: enforce counts as level >= 3 for routing.
  const level = (enforced ? Math.max(e.level ?? 0, 3) : (e.level ?? undefined)) as Level | undefined
  const tlsMode = enforced && e.mxs.length ? 'secure' : (level ?? 0) >= 1 ? 'encrypt' : undefined
  const levelText = e.level === undefined ? 'no level' : `level ${e.level}`
  return {
    source: 'static',
    outcome: 'found',
    level,
    tlsMode,
    mxPatterns: e.mxs,
    reason: `listed: mode ${e.mode}, ${levelText}${e.mxs.length ? `, mxs ${e.mxs.join(',')}` : ''}`,
  }
}
