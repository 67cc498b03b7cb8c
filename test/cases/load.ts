/**
 * Reads the adapter-independent cases in test/cases/*.json (format in
 * README.md) and checks their shape, so a typo fails loudly.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

export const CASES_DIR = path.resolve(__dirname, '..', '..', '..', 'test', 'cases')
export const CASE_AUTHSERV_ID = 'mx.linksec.test'

export type Decision = 'ACCEPT' | 'REJECT' | 'TEMPFAIL' | 'DISCARD' | 'QUARANTINE'
export type Step = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'eom'

export interface Case {
  name: string
  description: string
  client: { address: string; host: string; helo: string }
  tls?: { version: string; cipher: string; bits?: number; certSubject?: string; certIssuer?: string }
  mail: { from: string; params: string[] }
  rcpt: string[]
  config: Record<string, Record<string, string>>
  /** The whole message with CRLF line ends. */
  message: string
  expect: {
    decision: Decision
    step: Step
    reply?: string
    addsHeaders: Array<{ name: string; value: string }>
    removesHeaders: Array<{ name: string; index: number }>
  }
}

const DECISIONS: readonly Decision[] = ['ACCEPT', 'REJECT', 'TEMPFAIL', 'DISCARD', 'QUARANTINE']
const STEPS: readonly Step[] = ['connect', 'helo', 'mail', 'rcpt', 'data', 'eom']

type Raw = Record<string, unknown>

function fail(name: string, what: string): never {
  throw new Error(`test/cases/${name}.json: ${what}`)
}

function parseDecision(name: string, s: unknown): { decision: Decision; step: Step } {
  const m = typeof s === 'string' ? /^([A-Z]+)@([a-z]+)$/.exec(s) : null
  if (!m || !DECISIONS.includes(m[1] as Decision) || !STEPS.includes(m[2] as Step))
    fail(
      name,
      `expect.decision must be DECISION@step (${DECISIONS.join('|')} @ ${STEPS.join('|')}), got ${JSON.stringify(s)}`,
    )
  return { decision: m[1] as Decision, step: m[2] as Step }
}

function messageText(name: string, raw: Raw): string {
  if (typeof raw.message === 'string') return raw.message
  if (typeof raw.file === 'string') return fs.readFileSync(path.join(CASES_DIR, 'messages', raw.file), 'utf8')
  fail(name, 'needs "message" (inline text) or "file" (in test/cases/messages/)')
}

export function parseCase(name: string, raw: Raw): Case {
  const expect = (raw.expect ?? fail(name, 'needs "expect"')) as Raw
  const mail = (raw.mail ?? fail(name, 'needs "mail"')) as Raw
  if (typeof mail.from !== 'string') fail(name, 'mail.from must be a string like "<alice@example.org>"')
  if (!Array.isArray(raw.rcpt) || raw.rcpt.length === 0) fail(name, 'rcpt must list at least one recipient')
  const client = (raw.client ?? {}) as Raw
  return {
    name,
    description: String(raw.description ?? name),
    client: {
      address: String(client.address ?? '192.0.2.10'),
      host: String(client.host ?? 'client.example.test'),
      helo: String(client.helo ?? 'client.example.test'),
    },
    tls: (raw.tls ?? undefined) as Case['tls'],
    mail: { from: mail.from, params: ((mail.params as string[]) ?? []).map(String) },
    rcpt: (raw.rcpt as unknown[]).map(String),
    config: (raw.config ?? {}) as Case['config'],
    message: messageText(name, raw).replace(/\r?\n/g, '\r\n'),
    expect: {
      ...parseDecision(name, expect.decision),
      reply: expect.reply === undefined ? undefined : String(expect.reply),
      addsHeaders: (expect.addsHeaders ?? []) as Case['expect']['addsHeaders'],
      removesHeaders: (expect.removesHeaders ?? []) as Case['expect']['removesHeaders'],
    },
  }
}

/** Every case, sorted by file name. */
export function loadCases(dir = CASES_DIR): Case[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) =>
      parseCase(f.replace(/\.json$/, ''), JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Raw),
    )
}
