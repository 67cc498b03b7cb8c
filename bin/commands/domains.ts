/**
 * `linksec domains import FILE|URL [--dry-run] [--allow-weaker] [--skip-bad]`
 * merges a shared list of link-secure domains (the STARTTLS-Everywhere
 * policy-list shape plus `level`, core/policy/policy-list.ts) into
 * `[policy] domains_file`; a URL is fetched with the key fetcher's HTTPS
 * client (core/net/https.ts: https only, linksec's DNS, no private
 * addresses unless [net] allow_private_addresses, size and time caps).
 * One line per domain says what was added, updated, kept or weakened.
 *
 * `linksec domains export` prints what this server knows, in the same shape
 * (so another server can import it): the static list with each entry's
 * source and import time, and the declarations the fleet learned (Redis,
 * [redis] url), each with its source, when it was learned and when it ends.
 *
 * Exit: 0 done, 65 (EX_DATAERR) the list is refused (bad JSON, wrong shape,
 * expired, a bad entry without --skip-bad), 75 (EX_TEMPFAIL) the URL or
 * Redis could not be reached, 64 usage, 73 (EX_CANTCREAT) the list file
 * cannot be written.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { configPath, type LinksecConfig } from '../../core/config'
import { describeError, isLinksecError } from '../../core/errors'
import { createLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { isLevel } from '../../core/levels'
import { normalizeDomain } from '../../core/policy/domain'
import { httpsClientFor } from '../../core/net/https'
import {
  LIST_MAX_BYTES,
  mergeIntoList,
  parsePolicyList,
  PolicyListError,
  problemLines,
  toJson,
  type ListedEntry,
} from '../../core/policy/policy-list'
import { connectRedis } from '../../core/redis'
import { createRuntime, type Runtime } from '../../core/runtime'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

export const USAGE =
  'usage: linksec domains import FILE|https-URL [--dry-run] [--allow-weaker] [--skip-bad] [--config DIR]\n' +
  '       linksec domains export [--config DIR]\n'

export const OPTIONS = {
  'dry-run': { type: 'boolean' },
  'allow-weaker': { type: 'boolean' },
  'skip-bad': { type: 'boolean' },
} satisfies OptionTable

const EX = { OK: 0, USAGE: 64, DATAERR: 65, CANTCREAT: 73, TEMPFAIL: 75 } as const

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

export async function run(args: ParsedArgs): Promise<number> {
  const [verb, ...rest] = args.positional
  const ok = (verb === 'import' && rest.length === 1) || (verb === 'export' && rest.length === 0)
  if (!ok) {
    process.stderr.write(USAGE)
    return EX.USAGE
  }
  const config = configFromArgs(args)
  const rt = createRuntime(config, {
    log: createLogger({ level: 'warn', format: 'text', write: (l) => process.stderr.write(`${l}\n`) }),
    metrics: createMetrics({ processMetrics: false }),
  })
  try {
    return verb === 'import' ? await importList(rt, rest[0]!, args.flags) : await exportList(rt)
  } finally {
    await rt.engine.close()
  }
}

/** The list text from a file or an https URL; a LinksecError / PolicyListError says why not. */
async function readList(rt: Runtime, from: string): Promise<string> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(from)) {
    // The key fetcher's client: https only, no private targets unless allowed, time and size caps.
    const res = await httpsClientFor(rt).get(from, { maxBytes: LIST_MAX_BYTES })
    if (res.status !== 200)
      throw new PolicyListError(`${from} answered HTTP ${res.status}, not the list (nothing was imported)`)
    return res.body.toString('utf8')
  }
  let st: fs.Stats
  try {
    st = fs.statSync(from)
  } catch (e) {
    throw new PolicyListError(`cannot read ${from}: ${(e as Error).message}`)
  }
  if (!st.isFile()) throw new PolicyListError(`${from} is not a file`)
  if (st.size > LIST_MAX_BYTES)
    throw new PolicyListError(`${from} is larger than ${LIST_MAX_BYTES / 1024 / 1024} MiB`)
  return fs.readFileSync(from, 'utf8')
}

/** The operator's list file as raw JSON (so what was written stays as written). */
function readOwnList(file: string): Json {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new PolicyListError(`[policy] domains_file ${file} cannot be read: ${(e as Error).message}`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new PolicyListError(
      `[policy] domains_file ${file} is not valid JSON (${(e as Error).message}); fix it before importing into it`,
    )
  }
  if (!isObject(doc) || (doc.policies !== undefined && !isObject(doc.policies)))
    throw new PolicyListError(`[policy] domains_file ${file} is not a JSON object with a "policies" object`)
  return doc
}

async function importList(rt: Runtime, from: string, flags: ParsedArgs['flags']): Promise<number> {
  const file = configPath(rt.config, rt.config.policy.domains_file)
  const now = rt.now()
  let list: ReturnType<typeof parsePolicyList>
  let own: Json
  try {
    own = readOwnList(file)
    list = parsePolicyList(await readList(rt, from), now)
  } catch (e) {
    if (e instanceof PolicyListError) {
      process.stderr.write(`linksec domains import: ${from}: ${e.message}\n`)
      return EX.DATAERR
    }
    if (isLinksecError(e)) {
      process.stderr.write(`linksec domains import: ${e.message} (nothing was imported)\n`)
      return e.temporary ? EX.TEMPFAIL : EX.DATAERR
    }
    throw e
  }
  const bad = problemLines(list.problems)
  if (list.problems.length && !flags['skip-bad']) {
    process.stderr.write(
      `linksec domains import: ${from}: ${list.problems.length} bad ${list.problems.length === 1 ? 'entry' : 'entries'}; nothing was imported (--skip-bad imports the rest):\n` +
        bad.map((l) => `  ${l}\n`).join(''),
    )
    return EX.DATAERR
  }
  for (const l of bad) process.stderr.write(`skipped ${l}\n`)
  const aliases = isObject(own['policy-aliases']) ? own['policy-aliases'] : {}
  const { policies, notes } = mergeIntoList(
    isObject(own.policies) ? own.policies : {},
    aliases,
    list.entries,
    {
      source: from,
      now,
      allowWeaker: Boolean(flags['allow-weaker']),
    },
  )
  for (const n of notes) process.stdout.write(`${n.domain}: ${n.text}\n`)
  const count = (a: string) => notes.filter((n) => n.action === a).length
  const summary = `${count('added')} added, ${count('updated')} updated, ${count('weakened')} weakened, ${count('kept')} kept stricter, ${count('unchanged')} unchanged, ${list.problems.length} skipped`
  if (flags['dry-run']) {
    process.stdout.write(`dry run: ${summary}; ${file} not written\n`)
    return EX.OK
  }
  if (count('added') + count('updated') + count('weakened') > 0) {
    try {
      writeAtomically(file, JSON.stringify({ ...own, policies }, null, 2) + '\n')
    } catch (e) {
      process.stderr.write(`linksec domains import: cannot write ${file}: ${(e as Error).message}\n`)
      return EX.CANTCREAT
    }
  }
  process.stdout.write(
    `${summary}; ${file}${count('added') + count('updated') + count('weakened') ? ' written' : ' not changed'} (linksec serve and Haraka read it at start: restart them to use it)\n`,
  )
  return EX.OK
}

function writeAtomically(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, text, { mode: 0o644 })
  fs.renameSync(tmp, file)
}

interface LearnedJson {
  level?: unknown
  via?: unknown
  learnedAt?: unknown
  expiresAt?: unknown
}

/** The fleet's learned declarations, read from Redis ([redis] url + prefix + "learned:"). */
async function fleetLearned(
  config: LinksecConfig,
  now: number,
): Promise<Map<string, ListedEntry & { learnedAt: number }>> {
  const out = new Map<string, ListedEntry & { learnedAt: number }>()
  const redis = connectRedis({ url: config.redis.url, timeoutMs: Math.max(config.resolver.timeout_ms, 1000) })
  const keepAlive = setInterval(() => {}, 60_000) // the client is unref'd
  try {
    await redis.ready()
    const prefix = `${config.redis.prefix}learned:`
    for await (const keys of redis.client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
      if (keys.length === 0) continue
      const values = await redis.client.mGet(keys)
      keys.forEach((k, i) => {
        const domain = normalizeDomain(k.slice(prefix.length))
        let v: LearnedJson
        try {
          v = JSON.parse(values[i] ?? 'null') as LearnedJson
        } catch {
          return
        }
        if (!domain || !v || typeof v.level !== 'number' || !isLevel(v.level)) return
        if (typeof v.expiresAt !== 'number' || v.expiresAt <= now || typeof v.learnedAt !== 'number') return
        out.set(domain, {
          mode: 'none',
          mxs: [],
          level: v.level,
          source: `learned (${v.via === 'banner' ? 'banner' : 'ehlo'})`,
          learnedAt: v.learnedAt,
          expiresAt: v.expiresAt,
        })
      })
    }
  } finally {
    clearInterval(keepAlive)
    await redis.close()
  }
  return out
}

async function exportList(rt: Runtime): Promise<number> {
  const now = rt.now()
  const file = configPath(rt.config, rt.config.policy.domains_file)
  let staticList: ReturnType<typeof parsePolicyList> = { entries: new Map(), problems: [] }
  try {
    const own = readOwnList(file)
    // The operator's file as a list (its own problems are reported, not exported).
    staticList = parsePolicyList(
      JSON.stringify({ ...own, expires: undefined, policies: own.policies ?? {} }),
      now,
    )
  } catch (e) {
    if (!(e instanceof PolicyListError)) throw e
    process.stderr.write(`linksec domains export: ${e.message}\n`)
    return EX.DATAERR
  }
  for (const l of problemLines(staticList.problems)) process.stderr.write(`not exported: ${l}\n`)
  let learned = new Map<string, ListedEntry & { learnedAt: number }>()
  if (rt.config.redis.url) {
    try {
      learned = await fleetLearned(rt.config, now)
    } catch (e) {
      process.stderr.write(
        `linksec domains export: the fleet's Redis (${rt.config.redis.url}) cannot be read: ${describeError(e)}\n`,
      )
      return EX.TEMPFAIL
    }
  } else {
    process.stderr.write(
      'linksec domains export: no [redis] url: declarations learned by linksec serve or Haraka stay in their memory; exporting the static list only\n',
    )
  }
  const policies: Json = {}
  const age = (t: number | undefined) =>
    t === undefined ? undefined : Math.max(0, Math.round((now - t) / 1000))
  for (const [domain, e] of staticList.entries) {
    const j = toJson(e, e.source ?? `static (${rt.config.policy.domains_file})`, e.importedAt)
    const a = age(e.importedAt)
    policies[domain] = { ...j, ...(a !== undefined ? { 'linksec-age-seconds': a } : {}) }
  }
  for (const [domain, e] of learned) {
    // The operator's list wins: a learned declaration only adds what the list does not say.
    if (domain in policies) continue
    policies[domain] = {
      ...toJson(e, e.source, undefined),
      'linksec-learned': new Date(e.learnedAt).toISOString(),
      'linksec-age-seconds': age(e.learnedAt),
    }
  }
  const doc = {
    author: `linksec domains export (${rt.config.main.domain || rt.config.main.authserv_id || 'this server'})`,
    timestamp: new Date(now).toISOString(),
    policies,
  }
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
  return EX.OK
}
