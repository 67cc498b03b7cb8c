/**
 * Runs one test/cases/*.json case through the linksec Haraka plugin, in
 * process: the plugin is registered as Haraka registers it (`register()` on a
 * Plugin object whose config.get returns the case's linksec.ini), and a small
 * hook runner plays Haraka 3.x's connection.js around haraka-test-fixtures'
 * Connection and Transaction (real haraka-email-message headers and message
 * stream):
 *
 *   connect -> ehlo + capabilities -> mail [Address, params] -> rcpt -> data
 *   -> message lines (add_data) -> data_done -> data_post -> data_post_respond
 *   -> queue (queue_outbound when relaying)
 *
 * The parts of connection.js that touch headers are copied in behaviour, since
 * they decide what the next hop sees: the Received line at DATA, smtp.ini
 * `clean_auth_results` (incoming Authentication-Results renamed to
 * Original-Authentication-Results before data_post) and connection.auth_results()
 * (Haraka's own combined A-R field, added at data_done and re-written at the top
 * in data_post_respond). The header edits are measured against a control run
 * of the same Haraka steps without linksec, on the message as queued.
 *
 * What another plugin would do is left out: a `rcpt` or `queue` that every
 * linksec hook let through (CONT) counts as taken, as if rcpt_to.in_host_list
 * and a queue plugin followed linksec in config/plugins.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Address } from '@haraka/email-address'
import { register } from '../../plugins/linksec'
import type { HarakaConnection, HarakaPlugin, HarakaTransaction } from '../../plugins/haraka'
import { CASE_AUTHSERV_ID, type Case, type Decision, type Step } from '../cases/load'
import { diffFields, splitFields, type HeaderField } from './header-fields'

interface Fixtures {
  connection: {
    createConnection(
      client: object,
      server: object,
      cfg: object,
    ): HarakaConnection & {
      init_transaction(cb?: () => void): void
      remote: { ip: string; host: string | null }
      local: { host: string }
      hello: { host: string | null; verb: string | null }
      esmtp: boolean
    }
  }
}
type FixtureConnection = ReturnType<Fixtures['connection']['createConnection']>
type FixtureTransaction = HarakaTransaction & {
  mail_from: Address
  rcpt_to: Address[]
  add_data(line: Buffer): void
  end_data(cb: () => void): void
  message_stream: { get_data(cb: (data: Buffer) => void): void }
}

const fixtures = require('haraka-test-fixtures') as Fixtures
const constants = require('haraka-constants') as Record<
  'cont' | 'ok' | 'deny' | 'denydisconnect' | 'denysoft' | 'denysoftdisconnect',
  number
>
const rfc1869 = (require('haraka-utils') as { rfc1869: { parse(type: string, line: string): string[] } })
  .rfc1869

/** No case may reach the network (as the milter runner): DNS goes to a loopback port where nothing answers. */
export const OFFLINE_CONFIG = {
  resolver: { servers: '127.0.0.1:9', timeout_ms: '200' },
  // Recipient domains are judged by the static list alone unless a case switches a source on.
  policy: { txt: 'false', mta_sts: 'false', dane: 'false' },
}

/** The Haraka-side settings a case runs under; they change headers, never decisions. */
export interface HarakaVariant {
  name: string
  /** smtp.ini [headers] clean_auth_results (Haraka's default: true). */
  cleanAuthResults: boolean
  /** Results other plugins (spf, dkim) gave connection.auth_results(); Haraka writes its own A-R field. */
  otherAuthResults: string[]
}

export const HARAKA_VARIANTS: readonly HarakaVariant[] = [
  {
    name: 'A-R fields as received (clean_auth_results=false)',
    cleanAuthResults: false,
    otherAuthResults: [],
  },
  {
    name: 'Haraka defaults with an spf result (clean_auth_results=true)',
    cleanAuthResults: true,
    otherAuthResults: ['spf=pass smtp.mailfrom=example.org'],
  },
]

export interface Difference {
  decision: `${Decision}@${Step}`
  reply: string
  why: string
}

/** Cases the Haraka plugin answers differently from the milter, on purpose. */
export const HARAKA_DIFFERS: Record<string, Difference> = {
  'inbound-requiretls-plaintext': {
    decision: 'REJECT@mail',
    reply: '530 5.7.10',
    why:
      'Haraka hands the MAIL parameters to plugins, so plugins/declare.ts refuses REQUIRETLS on a ' +
      'plaintext session at MAIL with 530 5.7.10 (RFC 3207 "must issue STARTTLS first"); the milter ' +
      'judges the tag at end of message, 550 5.7.10. Same refusal, same enhanced status, before DATA.',
  },
}

export interface HarakaOutcome {
  decision: Decision
  step: Step
  /** The Haraka hook whose answer decided (undefined: nothing refused). */
  hook?: string
  /** The reply line Haraka would write, e.g. "550 5.7.10 this message …". */
  reply?: string
  /** Header and body of the message as queued (accepted messages only). */
  queued?: { header: HeaderField[]; body: string }
  /** Header fields of the control run (the same Haraka, no linksec). */
  control: HeaderField[]
  /** What linksec changed, queued vs control; `index` is 1-based per name in the control. */
  added: HeaderField[]
  removed: (HeaderField & { index: number })[]
  /** Keywords linksec added to the EHLO reply. */
  ehloKeywords: string[]
  /** transaction.notes.linksec as the queue hook saw it. */
  notes: Record<string, unknown>
  /** Every line linksec logged, for failure messages. */
  log: string[]
}

/* ---------------------------------------------------------------- plugin */

interface CasePlugin extends HarakaPlugin {
  hooks: { hook: string; method: string; priority: number; order: number }[]
  lines: string[]
}

/** The Plugin object Haraka would build, with linksec.ini = defaults + offline resolver + case overrides. */
export function casePlugin(c: Case): CasePlugin {
  const raw = {
    ...OFFLINE_CONFIG,
    ...c.config,
    policy: { ...OFFLINE_CONFIG.policy, ...c.config.policy },
    main: { ...c.config.main, authserv_id: CASE_AUTHSERV_ID },
  }
  const p = {
    name: 'linksec',
    hooks: [] as CasePlugin['hooks'],
    lines: [] as string[],
    config: { get: () => raw },
    register_hook(hook: string, method: string, priority = 0) {
      p.hooks.push({ hook, method, priority, order: p.hooks.length })
    },
  } as unknown as CasePlugin
  for (const level of ['logdebug', 'loginfo', 'logwarn', 'logerror', 'logcrit'])
    p[level] = (...args: unknown[]) => p.lines.push(`${level} ${args.map(String).join(' ')}`)
  asIfOnTestedHaraka()
  register.call(p)
  return p
}

/**
 * register() reads the running Haraka's version from its haraka.js in the
 * module cache (plugins/haraka-version.ts) and, on an unknown one, leaves the
 * outbound duty out and declares no level it would enforce. These cases run
 * the plugin as the installed Haraka (a version in the tested range) runs it.
 */
function asIfOnTestedHaraka(): void {
  const file = path.join(path.dirname(require.resolve('Haraka/package.json')), 'haraka.js')
  if (require.cache[file]) return
  const { version } = JSON.parse(fs.readFileSync(require.resolve('Haraka/package.json'), 'utf8')) as {
    version: string
  }
  require.cache[file] = { id: file, filename: file, loaded: true, exports: { version } } as NodeJS.Module
}

/* ----------------------------------------------------------- hook runner */

interface HookAnswer {
  code: number
  msg?: unknown
}

type HookRunner = (hook: string, conn: FixtureConnection, params?: unknown) => Promise<HookAnswer>

/** plugins.js run_next_hook: methods by priority then registration; the first answer other than CONT ends it. */
export function hookRunner(plugin: CasePlugin | undefined): HookRunner {
  return async (hook, conn, params) => {
    const methods = (plugin?.hooks ?? [])
      .filter((h) => h.hook === hook)
      .sort((a, b) => a.priority - b.priority || a.order - b.order)
    for (const m of methods) {
      const answer = await new Promise<HookAnswer>((resolve) => {
        const fn = plugin![m.method] as (next: unknown, target: unknown, params?: unknown) => void
        fn.call(
          plugin,
          (code?: number, msg?: unknown) => resolve({ code: code || constants.cont, msg }),
          conn,
          params,
        )
      })
      if (answer.code !== constants.cont) return answer
    }
    return { code: constants.cont }
  }
}

/** The code each *_respond of connection.js writes when the message is not a DSN. */
const DEFAULT_CODES: Record<string, [deny: number, denysoft: number]> = {
  mail: [550, 450],
  rcpt: [550, 450],
  data: [554, 451],
  data_post: [550, 450],
  queue: [550, 450],
  queue_outbound: [550, 450],
}

/** Haraka's respond(): a DSN object carries its own code and "X.Y.Z text"; otherwise the hook's default code. */
export function replyLine(hook: string, a: HookAnswer): string {
  const msg = a.msg as { constructor?: { name?: string }; code?: number; reply?: unknown } | undefined
  if (msg && typeof msg === 'object' && msg.constructor?.name === 'DSN')
    return `${msg.code} ${String(msg.reply)}`
  const [deny, denysoft] = DEFAULT_CODES[hook] ?? [550, 450]
  return `${isTempfail(a.code) ? denysoft : deny} ${msg === undefined ? '' : String(msg)}`.trim()
}

function isTempfail(code: number): boolean {
  return code === constants.denysoft || code === constants.denysoftdisconnect
}

function isRefusal(code: number): boolean {
  return isTempfail(code) || code === constants.deny || code === constants.denydisconnect
}

/* ------------------------------------------------------------ transaction */

const STEP_OF_HOOK: Record<string, Step> = {
  connect: 'connect',
  ehlo: 'helo',
  capabilities: 'helo',
  mail: 'mail',
  rcpt: 'rcpt',
  data: 'data',
  data_post: 'eom',
  queue: 'eom',
  queue_outbound: 'eom',
}

/** Thrown inside a run when a hook refuses; carries the decision. */
class Refused extends Error {
  constructor(
    readonly hook: string,
    readonly answer: HookAnswer,
  ) {
    super(`${hook} refused with code ${answer.code}`)
  }
}

async function must(run: HookRunner, hook: string, conn: FixtureConnection, params?: unknown): Promise<void> {
  const a = await run(hook, conn, params)
  if (isRefusal(a.code)) throw new Refused(hook, a)
}

/**
 * connection.ini as Haraka 3.3.4 ships it (config/connection.ini), in the parts
 * the transaction reads. The fixtures' own default lacks headers.max_lines, and
 * without it Transaction.add_data keeps no header line at all.
 */
function connectionIni(v: HarakaVariant) {
  return {
    main: { smtputf8: true, strict_rfc1869: false },
    headers: {
      add_received: true,
      clean_auth_results: v.cleanAuthResults,
      max_lines: 1000,
      max_received: 100,
    },
    max: { bytes: 26214400, mime_parts: 1000 },
  }
}

/** The connection as Haraka has it after connect (and STARTTLS, when the case has TLS). */
function openConnection(c: Case, v: HarakaVariant): FixtureConnection {
  const conn = fixtures.connection.createConnection({}, {}, connectionIni(v))
  conn.local.host = CASE_AUTHSERV_ID
  conn.remote.ip = c.client.address
  conn.remote.host = c.client.host
  if (c.tls) {
    const verified = Boolean(c.tls.certSubject)
    conn.tls = {
      enabled: true,
      advertised: true,
      verified,
      cipher: { name: c.tls.cipher, standardName: c.tls.cipher, version: c.tls.version },
      peerCertificate: verified
        ? { subject: { CN: c.tls.certSubject }, issuer: { CN: c.tls.certIssuer } }
        : undefined,
    }
  }
  return conn
}

/** cmd_mail: rfc1869 parse, Address, parameters upper-cased with valueless ones as null. */
export function mailParams(words: readonly string[]): Record<string, string | null> {
  const params: Record<string, string | null> = {}
  for (const word of words) {
    const kv = /^([^=]+)(?:=(.+))?$/.exec(word)
    if (kv?.[1]) params[kv[1].toUpperCase()] = kv[2] ?? null
  }
  return params
}

function envelope(kind: 'mail' | 'rcpt', address: string, params: readonly string[]) {
  const words = rfc1869.parse(kind, `${kind === 'mail' ? 'FROM' : 'TO'}:${[address, ...params].join(' ')}`)
  return { address: new Address(words[0] ?? ''), params: mailParams(words.slice(1)) }
}

async function greet(run: HookRunner, conn: FixtureConnection, c: Case): Promise<string[]> {
  await must(run, 'connect', conn)
  conn.hello = { host: c.client.helo, verb: 'EHLO' }
  conn.esmtp = true
  await must(run, 'ehlo', conn, c.client.helo)
  const base = [`${CASE_AUTHSERV_ID} Hello`, 'PIPELINING', '8BITMIME', 'SIZE 0']
  conn.capabilities = [...base]
  await run('capabilities', conn)
  return conn.capabilities.slice(base.length)
}

async function envelopeSteps(run: HookRunner, conn: FixtureConnection, c: Case): Promise<FixtureTransaction> {
  const from = envelope('mail', c.mail.from, c.mail.params)
  conn.init_transaction()
  const txn = conn.transaction as FixtureTransaction
  txn.mail_from = from.address
  await must(run, 'mail', conn, [from.address, from.params])
  for (const r of c.rcpt) {
    const to = envelope('rcpt', r, [])
    txn.rcpt_to.push(to.address)
    await must(run, 'rcpt', conn, [to.address, to.params])
  }
  await must(run, 'data', conn)
  return txn
}

/** The Received field Haraka's cmd_data writes first (one line; fixed id and date, so the control run matches). */
function receivedLine(txn: FixtureTransaction, c: Case): string {
  const proto = c.tls ? 'ESMTPS' : 'ESMTP'
  return (
    `Received: from ${c.client.helo} (${c.client.host} [${c.client.address}]) by ${CASE_AUTHSERV_ID}` +
    ` (Haraka) with ${proto} id ${txn.uuid}; Thu, 01 Jan 2026 00:00:00 +0000\r\n`
  )
}

/** What the client sends after DATA, line by line, dot-stuffed as on the wire. */
function feedMessage(txn: FixtureTransaction, message: string): void {
  const lines = message.match(/[^\n]*\n|[^\n]+$/g) ?? []
  for (const line of lines) {
    const crlf = line.endsWith('\r\n') ? line : line.replace(/\n?$/, '\r\n')
    txn.add_data(Buffer.from(crlf.startsWith('.') ? '.' + crlf : crlf, 'utf8'))
  }
}

/** connection.auth_results(): Haraka's own combined field, or '' when no plugin gave a result. */
function harakaAuthResults(v: HarakaVariant): string {
  return v.otherAuthResults.length ? [CASE_AUTHSERV_ID, ...v.otherAuthResults].join(';\r\n\t') : ''
}

/** data_done: clean_auth_results, Haraka's own A-R field, end_data. */
async function dataDone(txn: FixtureTransaction, v: HarakaVariant): Promise<void> {
  if (v.cleanAuthResults) {
    const ars = txn.header.get_all('Authentication-Results')
    for (const value of ars) txn.add_header('Original-Authentication-Results', value)
    if (ars.length) txn.remove_header('Authentication-Results')
  }
  const ar = harakaAuthResults(v)
  if (ar) txn.add_header('Authentication-Results', ar)
  await new Promise<void>((resolve) => txn.end_data(resolve))
}

/** data_post_respond: Haraka re-writes its own A-R field at the top, then queues. */
async function postData(run: HookRunner, conn: FixtureConnection, txn: FixtureTransaction, v: HarakaVariant) {
  await must(run, 'data_post', conn)
  const ar = harakaAuthResults(v)
  if (ar) {
    txn.remove_header('Authentication-Results')
    txn.add_leading_header('Authentication-Results', ar)
  }
  await must(run, conn.relaying ? 'queue_outbound' : 'queue', conn)
}

interface RawRun {
  refused?: Refused
  ehloKeywords: string[]
  txn?: FixtureTransaction
}

async function runSteps(run: HookRunner, c: Case, v: HarakaVariant): Promise<RawRun> {
  const conn = openConnection(c, v)
  let ehloKeywords: string[] = []
  let txn: FixtureTransaction | undefined
  try {
    ehloKeywords = await greet(run, conn, c)
    txn = await envelopeSteps(run, conn, c)
    txn.add_data(Buffer.from(receivedLine(txn, c)))
    feedMessage(txn, c.message)
    await dataDone(txn, v)
    await postData(run, conn, txn, v)
    return { ehloKeywords, txn }
  } catch (e) {
    if (e instanceof Refused) return { refused: e, ehloKeywords, txn }
    throw e
  }
}

function readQueued(txn: FixtureTransaction): Promise<string> {
  return new Promise((resolve) => txn.message_stream.get_data((data) => resolve(data.toString('utf8'))))
}

/* ------------------------------------------------------------------- run */

function decisionOf(r: RawRun): { decision: Decision; step: Step; hook?: string; reply?: string } {
  if (r.refused) {
    const { hook, answer } = r.refused
    const decision: Decision = isTempfail(answer.code) ? 'TEMPFAIL' : 'REJECT'
    return { decision, step: STEP_OF_HOOK[hook] ?? 'eom', hook, reply: replyLine(hook, answer) }
  }
  // The plugin accepts the message and sets the notes Haraka's queue/quarantine and queue/discard
  // plugins read (plugins/message.ts); quarantine_action OK keeps it out of delivery.
  const notes = r.txn?.notes ?? {}
  const quarantined = notes.quarantine === true && notes.quarantine_action === constants.ok
  const decision: Decision = quarantined ? 'QUARANTINE' : notes.discard === true ? 'DISCARD' : 'ACCEPT'
  return { decision, step: 'eom' }
}

/** Runs `c` through Haraka with linksec, and once without (the control), and compares. */
export async function runCaseThroughHaraka(c: Case, v: HarakaVariant): Promise<HarakaOutcome> {
  const control = await runSteps(hookRunner(undefined), c, v)
  const controlHeader = splitFields(await readQueued(control.txn!)).header
  const plugin = casePlugin(c)
  const r = await runSteps(hookRunner(plugin), c, v)
  const queued = r.refused || !r.txn ? undefined : splitFields(await readQueued(r.txn))
  const diff = queued ? diffFields(controlHeader, queued.header) : { added: [], removed: [] }
  return {
    ...decisionOf(r),
    queued,
    control: controlHeader,
    ...diff,
    ehloKeywords: r.ehloKeywords,
    notes: { ...((r.txn?.notes.linksec as Record<string, unknown>) ?? {}) },
    log: plugin.lines,
  }
}
