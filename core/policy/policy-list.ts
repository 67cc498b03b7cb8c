/**
 * Shared lists of link-secure domains (`linksec domains import|export`): the
 * STARTTLS-Everywhere policy-list shape plus a `level`, the same shape as
 * the operator's static list (core/policy/static-list.ts):
 *
 *   {"timestamp": "...", "expires": "2027-01-01T00:00:00Z", "author": "...",
 *    "policy-aliases": {"big": {"mode": "enforce", "mxs": [".mx.example"]}},
 *    "policies": {"example.net": {"mode": "enforce", "mxs": [".example.net"], "level": 3},
 *                 "example.org": {"policy-alias": "big", "level": 4}}}
 *
 * Lists come from strangers (a URL, a file a community hands around), so
 * everything is checked before anything is written: size and entry count
 * are capped, every domain name and field type is validated, an expired list
 * is refused, and each problem names its entry. Merging into the operator's
 * list never weakens a stricter entry unless asked (`--allow-weaker`), and
 * says what it kept. Entries carry where they came from and when
 * (`linksec-source`, `linksec-imported`), and learned declarations their end
 * (`linksec-expires`), so an export says sources and ages.
 */
import { isLevel, type Level } from '../levels'
import { normalizeDomain } from './domain'
import { parseStaticEntry, type StaticEntry } from './static-list'

/** A list larger than this is refused before it is parsed. */
export const LIST_MAX_BYTES = 16 * 1024 * 1024
/** More policies than this are refused (the STARTTLS-Everywhere list had a few hundred). */
export const LIST_MAX_ENTRIES = 200_000
/** At most this many problems are spelled out; the rest are counted. */
const PROBLEMS_SHOWN = 20

export const SOURCE_FIELD = 'linksec-source'
export const IMPORTED_FIELD = 'linksec-imported'
export const EXPIRES_FIELD = 'linksec-expires'

export class PolicyListError extends Error {}

export interface ListedEntry extends StaticEntry {
  /** linksec-source: a URL, a file name, "learned (ehlo)" … */
  source?: string
  /** ms since epoch, from linksec-imported. */
  importedAt?: number
  /** ms since epoch, from linksec-expires (learned declarations end with their ttl). */
  expiresAt?: number
}

export interface ListProblem {
  domain: string
  reason: string
}

export interface ParsedPolicyList {
  entries: Map<string, ListedEntry>
  problems: ListProblem[]
  expires?: number
  timestamp?: string
  author?: string
}

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const own = (o: Json, k: string): unknown => (Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined)

/** A name as quoted in a message: bounded and with controls escaped. */
export function shown(name: string): string {
  const s = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)
  return s
}

function dateField(doc: Json, key: string): number | undefined {
  const v = own(doc, key)
  if (v === undefined) return undefined
  const t = typeof v === 'string' ? Date.parse(v) : NaN
  if (Number.isNaN(t))
    throw new PolicyListError(
      `"${key}" is ${JSON.stringify(v).slice(0, 60)}, not a date (write e.g. 2027-01-31T00:00:00Z)`,
    )
  return t
}

/** Type problems spelled out, before parseStaticEntry's own checks. */
function typeProblem(raw: Json): string | undefined {
  const mode = own(raw, 'mode')
  if (mode !== undefined && typeof mode !== 'string')
    return `mode is a ${kind(mode)}, not "enforce", "testing" or "none"`
  const mxs = own(raw, 'mxs')
  if (mxs !== undefined && !Array.isArray(mxs)) return `mxs is a ${kind(mxs)}, not a list of host patterns`
  if (Array.isArray(mxs) && mxs.length > 100) return `mxs lists ${mxs.length} patterns (at most 100)`
  const level = own(raw, 'level')
  if (level !== undefined && typeof level !== 'number') return `level is a ${kind(level)}, not a number 0-4`
  for (const f of [SOURCE_FIELD, IMPORTED_FIELD, EXPIRES_FIELD]) {
    const v = own(raw, f)
    if (v !== undefined && typeof v !== 'string') return `${f} is a ${kind(v)}, not a string`
  }
  return undefined
}

const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v)

/** One policy, its alias resolved (own properties only: "constructor" is not an alias). */
function entryOf(raw: unknown, aliases: Json): ListedEntry | string {
  if (!isObject(raw)) return `the entry is a ${kind(raw)}, not an object`
  let value: Json = raw
  const alias = own(raw, 'policy-alias')
  if (alias !== undefined) {
    if (typeof alias !== 'string') return `policy-alias is a ${kind(alias)}, not a name`
    const target = own(aliases, alias)
    if (!isObject(target)) return `policy-alias ${shown(alias)} is not defined in "policy-aliases"`
    const { 'policy-alias': _a, ...rest } = raw
    value = { ...target, ...rest }
  }
  const problem = typeProblem(value)
  if (problem) return problem
  const e = parseStaticEntry(value)
  if (typeof e === 'string') return e
  const out: ListedEntry = { ...e }
  const source = own(value, SOURCE_FIELD)
  if (typeof source === 'string') out.source = source.slice(0, 300)
  for (const [field, key] of [
    [IMPORTED_FIELD, 'importedAt'],
    [EXPIRES_FIELD, 'expiresAt'],
  ] as const) {
    const v = own(value, field)
    if (typeof v !== 'string') continue
    const t = Date.parse(v)
    if (Number.isNaN(t)) return `${field} ${shown(v)} is not a date`
    out[key] = t
  }
  return out
}

/**
 * Parses and validates a list. Fatal problems (not JSON, not the shape, too
 * big, expired) throw PolicyListError; a bad entry is a problem naming it.
 */
export function parsePolicyList(text: string, now: number): ParsedPolicyList {
  if (Buffer.byteLength(text) > LIST_MAX_BYTES)
    throw new PolicyListError(`the list is larger than ${LIST_MAX_BYTES / 1024 / 1024} MiB`)
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new PolicyListError(`the list is not valid JSON: ${(e as Error).message}`)
  }
  if (!isObject(doc))
    throw new PolicyListError(`the list is a JSON ${kind(doc)}, not an object with "policies"`)
  const policies = own(doc, 'policies')
  if (!isObject(policies))
    throw new PolicyListError(
      policies === undefined
        ? 'the list has no "policies" object (the STARTTLS-Everywhere shape: {"policies": {"example.net": {...}}})'
        : `"policies" is a ${kind(policies)}, not an object of domain names`,
    )
  const aliasesRaw = own(doc, 'policy-aliases') ?? {}
  if (!isObject(aliasesRaw))
    throw new PolicyListError(`"policy-aliases" is a ${kind(aliasesRaw)}, not an object`)
  const expires = dateField(doc, 'expires')
  if (expires !== undefined && expires <= now)
    throw new PolicyListError(
      `the list expired at ${new Date(expires).toISOString()}; get a current copy from its publisher (nothing was imported)`,
    )
  const names = Object.keys(policies)
  if (names.length > LIST_MAX_ENTRIES)
    throw new PolicyListError(`the list has ${names.length} policies (at most ${LIST_MAX_ENTRIES})`)
  const entries = new Map<string, ListedEntry>()
  const writtenAs = new Map<string, string>()
  const problems: ListProblem[] = []
  for (const name of names) {
    const domain = normalizeDomain(name)
    if (!domain) {
      problems.push({
        domain: shown(name),
        reason: 'not a domain name (LDH labels, at least two, A-labels for IDNs)',
      })
      continue
    }
    if (writtenAs.has(domain)) {
      problems.push({
        domain,
        reason: `listed twice (as ${shown(writtenAs.get(domain)!)} and ${shown(name)})`,
      })
      entries.delete(domain)
      continue
    }
    writtenAs.set(domain, name)
    const e = entryOf(policies[name], aliasesRaw)
    if (typeof e === 'string') problems.push({ domain, reason: e })
    else if (e.expiresAt !== undefined && e.expiresAt <= now)
      problems.push({ domain, reason: `the entry expired at ${new Date(e.expiresAt).toISOString()}` })
    else entries.set(domain, e)
  }
  const str = (k: string) =>
    typeof own(doc, k) === 'string' ? (own(doc, k) as string).slice(0, 200) : undefined
  return { entries, problems, expires, timestamp: str('timestamp'), author: str('author') }
}

/** The problems as lines, the first PROBLEMS_SHOWN spelled out. */
export function problemLines(problems: readonly ListProblem[]): string[] {
  const lines = problems.slice(0, PROBLEMS_SHOWN).map((p) => `${p.domain}: ${p.reason}`)
  if (problems.length > PROBLEMS_SHOWN) lines.push(`… and ${problems.length - PROBLEMS_SHOWN} more`)
  return lines
}

const MODE_RANK = { none: 0, testing: 1, enforce: 2 } as const

/** The level routing gives an entry (enforce counts as >= 3, as staticAnswer reads it). */
export function effectiveLevel(e: StaticEntry): Level {
  const l = e.mode === 'enforce' ? Math.max(e.level ?? 0, 3) : (e.level ?? 0)
  return isLevel(l) ? l : 0
}

/** How E is weaker than THAN, in words; undefined when it is not. */
export function weakerIn(e: StaticEntry, than: StaticEntry): string | undefined {
  const why: string[] = []
  if (MODE_RANK[e.mode] < MODE_RANK[than.mode]) why.push(`mode ${e.mode} < ${than.mode}`)
  if (effectiveLevel(e) < effectiveLevel(than))
    why.push(`level ${effectiveLevel(e)} < ${effectiveLevel(than)}`)
  // A pinned domain CA (core/keys/ca.ts) is a protection: dropping or replacing it is weaker.
  if (than.ca && e.ca !== than.ca)
    why.push(e.ca ? `another domain CA (${e.ca} for ${than.ca})` : `no domain CA pin (${than.ca})`)
  if (than.mode === 'enforce' && than.mxs.length > 0 && e.mxs.length === 0)
    why.push(`no mxs (the certificate name would no longer be checked against ${than.mxs.join(',')})`)
  return why.length ? why.join(', ') : undefined
}

const describe = (e: StaticEntry) =>
  `mode ${e.mode}, level ${e.level ?? 'none'}${e.mxs.length ? `, mxs ${e.mxs.join(',')}` : ''}${e.ca ? `, ca ${e.ca}` : ''}`

const same = (a: StaticEntry, b: StaticEntry) =>
  a.mode === b.mode && a.level === b.level && a.mxs.join(',') === b.mxs.join(',') && a.ca === b.ca

export type MergeAction = 'added' | 'updated' | 'unchanged' | 'kept' | 'weakened'

export interface MergeNote {
  domain: string
  action: MergeAction
  text: string
}

/**
 * Merges INCOMING into the operator's list (raw JSON entries, so what the
 * operator wrote, aliases included, is kept as written). A stricter existing
 * entry is kept unless allowWeaker; every change is a note.
 */
export function mergeIntoList(
  existing: Json,
  aliases: Json,
  incoming: ReadonlyMap<string, ListedEntry>,
  o: { source: string; now: number; allowWeaker: boolean },
): { policies: Json; notes: MergeNote[] } {
  const policies: Json = {}
  const byDomain = new Map<string, string>()
  for (const name of Object.keys(existing)) {
    policies[name] = existing[name]
    const d = normalizeDomain(name)
    if (d) byDomain.set(d, name)
  }
  const notes: MergeNote[] = []
  for (const [domain, e] of incoming) {
    const written = byDomain.get(domain)
    const old = written === undefined ? undefined : entryOf(existing[written], aliases)
    const record = () => {
      if (written !== undefined && written !== domain) delete policies[written]
      // Where the list had it from stays in front: "learned (ehlo) via https://…".
      policies[domain] = toJson(e, e.source ? `${e.source} via ${o.source}` : o.source, o.now)
    }
    if (old === undefined) {
      record()
      notes.push({ domain, action: 'added', text: `added (${describe(e)})` })
    } else if (typeof old === 'string') {
      record()
      notes.push({ domain, action: 'updated', text: `replaced a broken entry (${old}) with ${describe(e)}` })
    } else if (same(old, e)) {
      notes.push({ domain, action: 'unchanged', text: `unchanged (${describe(e)})` })
    } else {
      const weaker = weakerIn(e, old)
      if (weaker && !o.allowWeaker) {
        notes.push({
          domain,
          action: 'kept',
          text: `kept the stricter entry here (${describe(old)}); the list says ${describe(e)}: ${weaker} (--allow-weaker takes it)`,
        })
      } else {
        record()
        notes.push({
          domain,
          action: weaker ? 'weakened' : 'updated',
          text: `${weaker ? `weakened as asked (${weaker})` : 'updated'}: ${describe(old)} -> ${describe(e)}`,
        })
      }
    }
  }
  return { policies, notes }
}

/** An entry as written into the list file (and into an export). */
export function toJson(e: ListedEntry, source: string | undefined, importedAt: number | undefined): Json {
  return {
    mode: e.mode,
    mxs: e.mxs,
    ...(e.level !== undefined ? { level: e.level } : {}),
    ...(e.ca ? { ca: e.ca } : {}),
    ...(source ? { [SOURCE_FIELD]: source } : {}),
    ...(importedAt !== undefined ? { [IMPORTED_FIELD]: new Date(importedAt).toISOString() } : {}),
    ...(e.expiresAt !== undefined ? { [EXPIRES_FIELD]: new Date(e.expiresAt).toISOString() } : {}),
  }
}

/** A learned declaration as a list entry: no MX pinning (mode none), its level, when it was learned and when it ends. */
export function learnedToJson(
  d: { level: Level; via: string; learnedAt: number; expiresAt: number },
  now: number,
  where?: string,
): Json {
  return {
    mode: 'none',
    mxs: [],
    level: d.level,
    [SOURCE_FIELD]: `learned (${d.via === 'banner' ? 'banner' : 'ehlo'})${where ? ` at ${where}` : ''}`,
    'linksec-learned': new Date(d.learnedAt).toISOString(),
    [EXPIRES_FIELD]: new Date(d.expiresAt).toISOString(),
    'linksec-age-seconds': Math.max(0, Math.round((now - d.learnedAt) / 1000)),
  }
}
