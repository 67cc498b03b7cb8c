/**
 * `linksec domains import FILE|URL [--dry-run] [--allow-weaker] [--skip-bad]`
 * merges a shared list of link-secure domains (the STARTTLS-Everywhere
 * policy-list shape plus `level`, core/policy/policy-list.ts) into
 * `[policy] domains_file`; a URL is fetched with the key fetcher's HTTPS
 * client (core/net/https.ts: https only, linksec's DNS, no private
 * addresses unless [net] allow_private_addresses, size and time caps).
 * One line per domain says what was added, updated, kept or weakened.
 *
 * `linksec domains export [--server HOST:PORT]` prints what this server
 * knows, in the same shape (so another server can import it): the static
 * list with each entry's source and import time, and the declarations
 * learned from peers, each with its source, when it was learned and when it
 * ends: the fleet's in Redis ([redis] url), and with --server those a running
 * linksec holds in memory (GET /v1/domains on its [http] listen,
 * core/http/recipients.ts).
 *
 * Exit: 0 done, 65 (EX_DATAERR) the list is refused (bad JSON, wrong shape,
 * expired, a bad entry without --skip-bad), 75 (EX_TEMPFAIL) the URL or
 * Redis could not be reached, 64 usage, 73 (EX_CANTCREAT) the list file
 * cannot be written.
 */
import * as fs from 'node:fs'
import * as http from 'node:http'
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
  learnedToJson,
} from '../../core/policy/policy-list'
import { connectRedis } from '../../core/redis'
import { createRuntime, type Runtime } from '../../core/runtime'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

export const USAGE =
  'usage: linksec domains import FILE|https-URL [--dry-run] [--allow-weaker] [--skip-bad] [--config DIR]\n' +
  '       linksec domains export [--server HOST:PORT] [--config DIR]\n'

export const OPTIONS = {
  'dry-run': { type: 'boolean' },
  'allow-weaker': { type: 'boolean' },
  'skip-bad': { type: 'boolean' },
  server: { type: 'string' },
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
    return verb === 'import' ? await importList(rt, rest[0]!, args.flags) : await exportList(rt, args.flags)
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

/** The fleet's learned declarations, read from Redis ([redis] url + prefix + "learned:"), as list entries. */
async function fleetLearned(config: LinksecConfig, now: number): Promise<Map<string, Json>> {
  const out = new Map<string, Json>()
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
        out.set(
          domain,
          learnedToJson(
            { level: v.level, via: String(v.via), learnedAt: v.learnedAt, expiresAt: v.expiresAt },
            now,
          ),
        )
      })
    }
  } finally {
    clearInterval(keepAlive)
    await redis.close()
  }
  return out
}

/** What a running linksec (serve, or Haraka with its own [http] listen) learned: GET http://SERVER/v1/domains. */
async function serverLearned(server: string, timeoutMs: number, now: number): Promise<Map<string, Json>> {
  const body = await new Promise<string>((resolve, reject) => {
    const req = http.get(`http://${server}/v1/domains`, { timeout: timeoutMs }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        text += d
        if (text.length > LIST_MAX_BYTES) req.destroy(new Error(`more than ${LIST_MAX_BYTES} bytes`))
      })
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(text)
          : reject(new Error(`HTTP ${res.statusCode}: ${text.trim().slice(0, 200)}`)),
      )
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
  })
  // Checked like any list: it comes over the network.
  const list = parsePolicyList(body, now)
  const doc = JSON.parse(body) as { policies: Record<string, Json> }
  const out = new Map<string, Json>()
  for (const [name, raw] of Object.entries(doc.policies)) {
    const domain = normalizeDomain(name)
    const e = domain ? list.entries.get(domain) : undefined
    if (!domain || !e) continue
    // Only the checked fields, plus the two that say when (as the server wrote them, if well-typed).
    const learnedAt = raw['linksec-learned']
    const age = raw['linksec-age-seconds']
    out.set(domain, {
      ...toJson(e, `${e.source ?? 'learned'} at ${server}`, undefined),
      ...(typeof learnedAt === 'string' && !Number.isNaN(Date.parse(learnedAt))
        ? { 'linksec-learned': learnedAt }
        : {}),
      ...(typeof age === 'number' && Number.isFinite(age) ? { 'linksec-age-seconds': age } : {}),
    })
  }
  return out
}

async function exportList(rt: Runtime, flags: ParsedArgs['flags']): Promise<number> {
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
  let learned = new Map<string, Json>()
  if (typeof flags.server === 'string') {
    try {
      learned = await serverLearned(flags.server, rt.config.net.timeout_ms, now)
    } catch (e) {
      process.stderr.write(
        `linksec domains export: ${flags.server} (--server) cannot be read: ${describeError(e)}; is [http] recipients_api on and this host allowed?\n`,
      )
      return EX.TEMPFAIL
    }
  }
  if (rt.config.redis.url) {
    try {
      for (const [d, j] of await fleetLearned(rt.config, now)) if (!learned.has(d)) learned.set(d, j)
    } catch (e) {
      process.stderr.write(
        `linksec domains export: the fleet's Redis (${rt.config.redis.url}) cannot be read: ${describeError(e)}\n`,
      )
      return EX.TEMPFAIL
    }
  } else if (typeof flags.server !== 'string') {
    process.stderr.write(
      'linksec domains export: no [redis] url and no --server: declarations learned by Haraka stay in its memory (--server HOST:PORT reads them from its [http] listen); exporting the static list only\n',
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
  // The operator's list wins: a learned declaration only adds what the list does not say.
  for (const [domain, j] of learned) if (!(domain in policies)) policies[domain] = j
  const doc = {
    author: `linksec domains export (${rt.config.main.domain || rt.config.main.authserv_id || 'this server'})`,
    timestamp: new Date(now).toISOString(),
    policies,
  }
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
  return EX.OK
}
