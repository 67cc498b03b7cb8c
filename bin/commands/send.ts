/**
 * `linksec send [flags] [--] [recipient…] < message`: a sendmail-compatible
 * client (mutt: `set sendmail="linksec send"`). Per recipient domain it asks
 * linksec's DNS for the MX, the domain's policy and each recipient's key
 * (core/send/recipient.ts, as GET /v1/recipients/ does), signs with the
 * sender's key when one is held (core/sign), encrypts with --encrypt or
 * `[send] encrypt=auto` when every recipient has a key, and delivers straight
 * to the MX under the no-downgrade rule (core/send/smtp.ts), else through
 * `[send] relay`. One line per recipient; exit as sendmail (sysexits.h):
 * 0 all sent, 64 usage, 65 unreadable message, 67 an address that is not
 * one, 69 refused for good (5xx, a hop the rule refuses, no MX), 75 worth
 * retrying (4xx, unreachable, a lookup failed). With several outcomes the
 * exit is the first of 75, 69, 67 that occurred; the lines say which
 * recipient got what, so nothing is half-sent silently.
 *
 * Flags: -t (recipients from To/Cc/Bcc), -f ADDR / -r ADDR (envelope sender),
 * -i / -oi (a lone "." does not end the message: stdin is always read to
 * its end), -F NAME (ignored), --encrypt, --requiretls, --config DIR.
 *
 * --requiretls asks for REQUIRETLS (RFC 8689 §4.1, the originator's
 * choice): the message then needs, per recipient hop, a verified
 * certificate and either REQUIRETLS offered after STARTTLS (then MAIL FROM
 * carries it) or a declared link-security level of 3 or more, the rule every
 * linksec relay applies to REQUIRETLS mail (core/enforce/hop.ts,
 * docs/architecture.md §6.3); a hop with neither is refused (69), a TLS or
 * certificate failure 75, and nothing is sent to it. A `Link-Security-Required`
 * tag alone does not add REQUIRETLS: its rule is the hop's declared level,
 * as linksec relays it.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import { configPath, loadConfig, PACKAGE_CONFIG_DIR } from '../../core/config'
import { peerPolicyOf } from '../../core/enforce/policy'
import { parseAddress, type MailAddress } from '../../core/keys'
import { decisionFields } from '../../core/decision-log'
import { createLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { dnsClientFor } from '../../core/net/dns'
import { createRuntime, type Runtime } from '../../core/runtime'
import { secretStoreFor } from '../../core/sign/step'
import { encryptOutgoing, prepareMessage, signOutgoing, unparsable } from '../../core/send/message'
import { addressesOf, resolveMx } from '../../core/send/mx'
import { badAddressReason, lookupRecipient, type RecipientFacts } from '../../core/send/recipient'
import { attempt, type Attempt, type Target } from '../../core/send/smtp'
import type { ParsedArgs } from '../args'

export const EX = { OK: 0, USAGE: 64, DATAERR: 65, NOUSER: 67, UNAVAILABLE: 69, TEMPFAIL: 75 } as const

export const RAW_ARGS = true
export const OPTIONS = {}

export const USAGE =
  'usage: linksec send [-t] [-i] [-f sender] [--encrypt] [--requiretls] [--config DIR] [--] [recipient…] < message\n'

export interface SendArgs {
  extract: boolean
  sender?: string
  encrypt: boolean
  /** Ask for REQUIRETLS (RFC 8689). */
  requireTls: boolean
  config?: string
  recipients: string[]
}

/** sendmail's flags; a flag it does not know is a usage error naming it. */
export function parseSendArgs(argv: readonly string[]): SendArgs | { error: string } {
  const out: SendArgs = { extract: false, encrypt: false, requireTls: false, recipients: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const value = (flag: string): string | undefined =>
      a.length > flag.length ? a.slice(flag.length) : argv[++i]
    if (a === '--') {
      out.recipients.push(...argv.slice(i + 1))
      break
    } else if (a === '-t') out.extract = true
    else if (a === '-i' || a === '-oi') continue
    else if (a === '--encrypt') out.encrypt = true
    else if (a === '--requiretls') out.requireTls = true
    else if (a === '--config' || a.startsWith('--config=')) {
      out.config = a.startsWith('--config=') ? a.slice(9) : argv[++i]
      if (!out.config) return { error: '--config needs a directory' }
    } else if (a.startsWith('-f') || a.startsWith('-r')) {
      const v = value(a.slice(0, 2))
      if (v === undefined) return { error: `${a.slice(0, 2)} needs the sender's address` }
      out.sender = v
    } else if (a.startsWith('-F')) {
      if (value('-F') === undefined) return { error: '-F needs a name' }
    } else if (a.startsWith('-')) return { error: `unknown flag ${a}` }
    else out.recipients.push(a)
  }
  return out
}

interface Outcome {
  rcpt: string
  exit: number
  line: string
}

export async function run(args: ParsedArgs): Promise<number> {
  return main(args.positional)
}

async function main(argv: string[]): Promise<number> {
  const a = parseSendArgs(argv)
  if ('error' in a) {
    process.stderr.write(`linksec send: ${a.error}\n${USAGE}`)
    return EX.USAGE
  }
  const config = loadConfig(a.config ?? PACKAGE_CONFIG_DIR)
  const input = fs.readFileSync(0)
  if (input.length === 0) {
    process.stderr.write('linksec send: no message on standard input\n')
    return EX.DATAERR
  }
  const rt = createRuntime(config, {
    log: createLogger({ level: 'warn', format: 'text', write: (l) => process.stderr.write(`${l}\n`) }),
    metrics: createMetrics({ processMetrics: false }),
  })
  try {
    const outcomes = await sendMessage(rt, a, input)
    if (!Array.isArray(outcomes)) {
      process.stderr.write(`linksec send: ${outcomes.error}\n`)
      logOutcomes(rt, a, [{ rcpt: '', exit: outcomes.exit, line: outcomes.error }])
      return outcomes.exit
    }
    for (const o of outcomes) (o.exit === 0 ? process.stdout : process.stderr).write(`${o.line}\n`)
    logOutcomes(rt, a, outcomes)
    for (const code of [EX.TEMPFAIL, EX.UNAVAILABLE, EX.NOUSER])
      if (outcomes.some((o) => o.exit === code)) return code
    return EX.OK
  } finally {
    await rt.engine.close()
  }
}

const REASON: Record<number, string> = {
  [EX.OK]: 'sent',
  [EX.TEMPFAIL]: 'temporary',
  [EX.UNAVAILABLE]: 'refused',
  [EX.NOUSER]: 'no_such_address',
  [EX.DATAERR]: 'bad_message',
  [EX.USAGE]: 'usage',
}

/**
 * `linksec send` is one process per message, so counters would die with
 * it: what it did goes to `[send] log_file` instead, one JSON decision line
 * per recipient in the fields of core/decision-log.ts (adapter "send";
 * verdict accept, tempfail or reject; reason sent, temporary, refused,
 * no_such_address, bad_message; the recipient's line as `detail`), for the
 * operator's log shipper. A log that cannot be written is said on stderr
 * and changes nothing about the mail.
 */
function logOutcomes(rt: Runtime, a: SendArgs, outcomes: readonly Outcome[]): void {
  const file = rt.config.send.log_file
  if (!file) return
  const lines = outcomes.map((o) => {
    const action = o.exit === EX.OK ? 'accept' : o.exit === EX.TEMPFAIL ? 'tempfail' : 'reject'
    const fields = decisionFields(
      {
        adapter: 'send',
        verdict: action,
        reason: REASON[o.exit] ?? 'failed',
        senderDomain: a.sender ? parseAddress(a.sender)?.domain : undefined,
        extra: { rcpt: o.rcpt || undefined, exit: o.exit, detail: o.line },
      },
      action,
    )
    return JSON.stringify({
      time: new Date(rt.now()).toISOString(),
      level: 'info',
      msg: 'decision',
      ...fields,
    })
  })
  try {
    fs.appendFileSync(configPath(rt.config, file), lines.map((l) => `${l}\n`).join(''), { mode: 0o640 })
  } catch (e) {
    process.stderr.write(`linksec send: [send] log_file ${file} cannot be written: ${(e as Error).message}\n`)
  }
}

export async function sendMessage(
  rt: Runtime,
  a: SendArgs,
  input: Buffer,
): Promise<Outcome[] | { exit: number; error: string }> {
  const cfg = rt.config
  const hostname = cfg.main.authserv_id || os.hostname()
  const broken = unparsable(input)
  if (broken) return { exit: EX.DATAERR, error: `not sent to anyone: ${broken}` }
  const msg = prepareMessage(input, { now: new Date(rt.now()), hostname, requireTls: a.requireTls })
  const wanted = [...new Set([...a.recipients, ...(a.extract ? msg.headerRecipients : [])])]
  if (wanted.length === 0) return { exit: EX.USAGE, error: 'no recipients: name them or use -t' }
  const sender = a.sender ? parseAddress(a.sender) : msg.from
  if (!sender)
    return {
      exit: EX.DATAERR,
      error: a.sender
        ? `-f ${a.sender}: ${badAddressReason(a.sender) ?? 'not an address'}`
        : 'the message has no single From address; give the sender with -f',
    }
  const outcomes: Outcome[] = []
  const valid: MailAddress[] = []
  for (const r of wanted) {
    const p = parseAddress(r)
    if (p) valid.push(p)
    else
      outcomes.push({
        rcpt: r,
        exit: EX.NOUSER,
        line: `${r}: not sent: ${badAddressReason(r) ?? 'not an address'}`,
      })
  }
  const facts = await Promise.all(valid.map((r) => lookupRecipient(rt, r)))
  const encrypt =
    a.encrypt || (cfg.send.encrypt === 'auto' && facts.length > 0 && facts.every((f) => f.key.published))
  let going = facts
  if (encrypt) {
    going = facts.filter((f) => f.key.published)
    for (const f of facts.filter((x) => !x.key.published))
      outcomes.push({
        rcpt: f.address.address,
        exit: f.key.outcome === 'temperror' ? EX.TEMPFAIL : EX.UNAVAILABLE,
        line: `${f.address.address}: not sent: encryption was asked for and ${f.key.reason}`,
      })
  }
  if (going.length === 0) return outcomes
  const signer = await secretStoreFor(rt).signer(sender.address)
  let body: Buffer
  try {
    if (encrypt) {
      const keys = going.flatMap((f) => f.keys)
      body = await encryptOutgoing(msg.raw, keys, signer)
    } else if (signer) {
      const s = signOutgoing(msg.raw, signer, cfg.sign.protected_headers)
      if (typeof s === 'string') return { exit: EX.DATAERR, error: `the message cannot be signed: ${s}` }
      body = s
    } else body = msg.raw
  } catch (e) {
    return { exit: EX.DATAERR, error: e instanceof Error ? e.message : String(e) }
  }
  const how = [signer ? 'signed' : 'unsigned', ...(encrypt ? ['encrypted'] : [])].join(', ')
  const byDomain = new Map<string, RecipientFacts[]>()
  for (const f of going) byDomain.set(f.address.domain, [...(byDomain.get(f.address.domain) ?? []), f])
  for (const [domain, group] of byDomain)
    outcomes.push(
      ...(await deliverDomain(rt, domain, group, sender.address, body, msg.requirement, hostname, how)),
    )
  return outcomes
}

async function deliverDomain(
  rt: Runtime,
  domain: string,
  group: RecipientFacts[],
  from: string,
  message: Buffer,
  requirement: ReturnType<typeof prepareMessage>['requirement'],
  hostname: string,
  how: string,
): Promise<Outcome[]> {
  const cfg = rt.config
  const rcpts = group.map((f) => f.address.address)
  const policy = peerPolicyOf(group[0]!.policy)
  const base = {
    from,
    message,
    requirement,
    hostname,
    caFile: cfg.net.ca_file ? configPath(cfg, cfg.net.ca_file) : undefined,
    timeoutMs: cfg.send.timeout_ms,
  }
  const tried: string[] = []
  let worst: { exit: number; why: string } = { exit: EX.TEMPFAIL, why: 'no attempt was made' }
  const note = (r: Attempt) => {
    if (r.kind === 'refused') {
      tried.push(`${r.hop}: ${r.verdict.text}`)
      worst = { exit: r.verdict.action === 'bounce' ? EX.UNAVAILABLE : EX.TEMPFAIL, why: r.verdict.text }
    } else if (r.kind === 'failed') {
      tried.push(`${r.hop}: ${r.code && !r.text.startsWith(String(r.code)) ? `${r.code} ` : ''}${r.text}`)
      worst = { exit: r.temporary ? EX.TEMPFAIL : EX.UNAVAILABLE, why: r.text }
    }
  }
  const sent = (r: Extract<Attempt, { kind: 'sent' }>, via: string): Outcome[] =>
    r.results.map((x) => ({
      rcpt: x.rcpt,
      exit: x.ok
        ? EX.OK
        : x.code && x.code >= 500
          ? noSuchUser(x.text, x.code)
            ? EX.NOUSER
            : EX.UNAVAILABLE
          : EX.TEMPFAIL,
      line: x.ok
        ? `${x.rcpt}: sent ${via} ${r.hop}${r.tls ? ` over ${r.tls}` : ' without TLS'}${r.requireTls ? ' with REQUIRETLS' : ''} (${how}): ${x.text}`
        : `${x.rcpt}: not sent: ${r.hop} answered ${x.text}`,
    }))

  const route = await resolveMx(dnsClientFor(rt), domain, { allowPrivate: cfg.net.allow_private_addresses })
  if (route.kind === 'hosts') {
    for (const host of route.hosts)
      for (const ip of host.addresses) {
        const r = await attempt(
          { name: host.name, ip, port: cfg.send.port },
          { ...base, recipients: rcpts, policy },
        )
        if (r.kind === 'sent') return sent(r, 'to')
        note(r)
      }
  } else {
    tried.push(route.reason)
    worst = { exit: route.kind === 'temp' ? EX.TEMPFAIL : EX.UNAVAILABLE, why: route.reason }
  }
  if (cfg.send.relay) {
    const relay = await relayTarget(rt).catch((e: unknown) => {
      tried.push(`relay ${cfg.send.relay}: ${e instanceof Error ? e.message : String(e)}`)
      return undefined
    })
    if (relay) {
      // The relay is always reached over STARTTLS; tagged mail still needs a hop that declares its level.
      const relayPolicy = { domain: relay.name, tlsRequired: true, certificateRequired: false }
      const r = await attempt(relay, { ...base, recipients: rcpts, policy: relayPolicy })
      if (r.kind === 'sent') return sent(r, 'through the relay')
      note(r)
    }
  }
  return rcpts.map((rcpt) => ({
    rcpt,
    exit: worst.exit,
    line: `${rcpt}: not sent: ${tried.join('; ') || worst.why}`,
  }))
}

/**
 * A permanent refusal that is about the address (RFC 3463 §3.2: 5.1.x
 * address status), or a bare 550 without an enhanced code: EX_NOUSER, as
 * sendmail. Other 5xx (5.7.1 policy, 5.2.2 mailbox full …) are EX_UNAVAILABLE.
 */
function noSuchUser(text: string, code: number): boolean {
  const enhanced = /^\d{3}[ -](\d)\.(\d{1,3})\.\d{1,3}\b/.exec(text)
  return enhanced ? enhanced[1] === '5' && enhanced[2] === '1' : code === 550
}

/** [send] relay as a target; a name is resolved through linksec's DNS like an MX. */
async function relayTarget(rt: Runtime): Promise<Target | undefined> {
  const cfg = rt.config
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(cfg.send.relay)
  if (!m) return undefined
  const host = m[1] ?? m[2]!
  const ip = net.isIP(host) ? host : (await addressesOf(dnsClientFor(rt), host))[0]
  if (!ip) throw new Error(`${host} has no address`)
  const pass = cfg.send.relay_password_file
    ? fs.readFileSync(configPath(cfg, cfg.send.relay_password_file), 'utf8').split(/\r?\n/)[0]!
    : ''
  return {
    name: host,
    ip,
    port: Number(m[3] ?? 587),
    auth: cfg.send.relay_user ? { user: cfg.send.relay_user, pass } : undefined,
  }
}
