/**
 * Postfix 3.7's TLS outcomes, read from its log. Postfix before 3.10 tells a
 * policy server nothing about how a delivery went, so `linksec serve` follows
 * the mail log ([tlsrpt] postfix_log: Postfix's `maillog_file`, or the file
 * syslog writes, e.g. /var/log/mail.log) and counts each outbound session the
 * smtp client logged (smtp_tls_loglevel >= 1) under the policy linksec holds
 * for the recipient domain, as the Haraka side does (core/tlsrpt/index.ts):
 *
 *   smtp[pid]: (Anonymous|Untrusted|Trusted|Verified) TLS connection established to H[IP]:P: ...
 *   smtp[pid]: [server ]certificate verification failed for H[IP]:P: <OpenSSL reason>
 *   smtp[pid]: QID: to=<r@domain>, relay=H[IP]:P, ..., status=... (<reason>)
 *
 * The TLS line carries no queue id; one smtp process runs one session at a
 * time, so the next status line of the same process with the same relay is
 * its outcome (and the session's only count: further recipients of the
 * message, and messages over a cached connection, are the same session,
 * RFC 8460 §4.3 counts sessions). Failures Postfix decides are in the status
 * reason: "TLS is required, but was not offered by host" (starttls-not-
 * supported), "Server certificate not verified" (the certificate result of
 * the verification error, core/tlsrpt/outcome.ts), "Cannot start TLS:
 * handshake failure" (validation-failure).
 *
 * Under an MTA-STS policy in `mode: testing` (reported, not enforced: the
 * socketmap gives Postfix a level below verify, which checks no name),
 * `Untrusted` and `Anonymous` sessions are certificate failures and a
 * `Trusted` one is not counted: its name was never checked (RFC 8461 §4.1).
 *
 * Never counted: a plaintext delivery at level `may` (Postfix does not log
 * whether STARTTLS was offered, so linksec cannot tell "not offered" from
 * "not tried"), and anything that does not parse in full — the log is text
 * other programs may write too (syslog), so a line that is not exactly
 * Postfix's form, names no valid domain, host or address, or is longer than
 * a Postfix line can be, is skipped, never guessed at.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import { describeError } from '../errors'
import { normalizeDomain, policyResolverFor } from '../policy'
import type { Runtime } from '../runtime'
import { recordSession, type SessionSeen } from './index'

/** One outbound session Postfix logged, in the facts core/tlsrpt/outcome.ts maps to a result. */
export interface PostfixSession extends SessionSeen {
  /** The recipient domain: the policy domain (RFC 8460 §4.4). */
  domain: string
}

/** Postfix logs no line longer than line_length_limit-ish text; anything longer is not Postfix's. */
export const MAX_LINE = 4096
/** Open sessions kept (one per smtp process); beyond this the oldest is forgotten. */
const MAX_PENDING = 1024

type TlsLevel = 'Anonymous' | 'Untrusted' | 'Trusted' | 'Verified'

/** What a TLS level below Trusted says of the certificate, when no verification line said more. */
const LEVEL_ERROR: Partial<Record<TlsLevel, string>> = {
  Untrusted: 'certificate not trusted (Postfix: Untrusted TLS connection)',
  Anonymous: 'no certificate (Postfix: Anonymous TLS connection)',
}

interface Pending {
  level: TlsLevel
  relay: string
  certError?: string
  /** Made by the verification line Postfix logs before the TLS line of the same session. */
  beforeTls?: boolean
}

/** `syslog_name/smtp[pid]:` (syslog_name may hold slashes: postfix/linksec-secure/smtp). */
const TAG = /(?:^|\s)((?:[\w.+-]+\/)+(?:smtp|lmtp))\[(\d{1,10})\]: (.*)$/
const TLS_UP = /^(Anonymous|Untrusted|Trusted|Verified) TLS connection established to (\S+): \S/
const VERIFY_FAILED = /^(?:server )?certificate verification failed for (\S+): (.+)$/
const STATUS =
  /^[0-9A-Za-z]{5,32}: to=<([^<>\s]{1,512})>, (?:orig_to=<[^<>\s]{0,512}>, )?relay=(\S+), .*\bstatus=(sent|deferred|bounced|expired) \((.*)\)$/
/** `host[address]:port` as Postfix writes a relay. */
const RELAY = /^([A-Za-z0-9.-]{1,253})\[([0-9A-Fa-f:.]{2,45})\]:(\d{1,5})$/

function relayParts(relay: string): { host: string; ip: string } | undefined {
  const m = RELAY.exec(relay)
  if (!m || net.isIP(m[2]!) === 0 || Number(m[3]) > 65535) return undefined
  const host = m[1]!.toLowerCase()
  return { host, ip: m[2]! }
}

/** Printable ASCII only, capped: free text from the log goes into a report (failure-reason-code). */
function cleanReason(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200)
}

function domainOf(address: string): string | undefined {
  const at = address.lastIndexOf('@')
  return at > 0 ? normalizeDomain(address.slice(at + 1)) : undefined
}

/**
 * The line-by-line state machine. feed() returns the sessions a line
 * completes (zero or one); it never throws on any input.
 */
export class PostfixLogParser {
  private readonly pending = new Map<string, Pending>()
  /**
   * The last session counted per process: its queue id, relay and the
   * recipients logged for it. Another recipient of the same message is the
   * same session; a recipient seen again is the next attempt (a retry).
   */
  private readonly lastCounted = new Map<string, { key: string; to: Set<string> }>()

  feed(line: string): PostfixSession[] {
    if (line.length > MAX_LINE) return []
    const tag = TAG.exec(line)
    if (!tag) return []
    const proc = `${tag[1]}[${tag[2]}]`
    const text = tag[3]!
    const up = TLS_UP.exec(text)
    if (up) {
      if (!relayParts(up[2]!)) return []
      const before = this.pending.get(proc)
      const certError = before?.beforeTls && before.relay === up[2] ? before.certError : undefined
      this.remember(proc, { level: up[1] as TlsLevel, relay: up[2]!, certError })
      this.lastCounted.delete(proc)
      return []
    }
    const failed = VERIFY_FAILED.exec(text)
    if (failed) {
      // Postfix 3.7 logs it before the TLS line; the first error of the chain is the one reported.
      const p = this.pending.get(proc)
      if (p?.beforeTls && p.relay === failed[1]) return []
      if (!relayParts(failed[1]!)) return []
      this.remember(proc, {
        level: 'Untrusted',
        relay: failed[1]!,
        certError: cleanReason(failed[2]!),
        beforeTls: true,
      })
      return []
    }
    const st = STATUS.exec(text)
    if (!st) return []
    return this.status(proc, text.slice(0, text.indexOf(':')), st[1]!, st[2]!, st[4]!)
  }

  private remember(proc: string, p: Pending): void {
    this.pending.delete(proc)
    this.pending.set(proc, p)
    if (this.pending.size > MAX_PENDING) this.pending.delete(this.pending.keys().next().value!)
  }

  private status(proc: string, qid: string, to: string, relay: string, reason: string): PostfixSession[] {
    const domain = domainOf(to)
    const where = relayParts(relay)
    if (!domain || !where) return []
    const pending = this.pending.get(proc)
    const open = pending && pending.relay === relay ? pending : undefined
    const sessionKey = `${qid} ${relay}`
    const base = { domain, mxHost: where.host, ip: where.ip, sawEhlo: true }
    const once = (s: PostfixSession): PostfixSession[] => {
      const last = this.lastCounted.get(proc)
      if (last && last.key === sessionKey && !last.to.has(to) && last.to.size < 1000) {
        last.to.add(to)
        return []
      }
      this.lastCounted.delete(proc)
      this.lastCounted.set(proc, { key: sessionKey, to: new Set([to]) })
      if (this.lastCounted.size > MAX_PENDING) this.lastCounted.delete(this.lastCounted.keys().next().value!)
      if (open) this.pending.delete(proc)
      return [s]
    }
    if (/^TLS is required, but (?:was not offered by|host \S+ refused to start TLS)/.test(reason))
      return once({ ...base, tls: false, offersStartTls: false, certVerified: false })
    if (/^Cannot start TLS: /.test(reason))
      return once({
        ...base,
        tls: false,
        offersStartTls: true,
        certVerified: false,
        tlsError: cleanReason(reason),
      })
    if (/^Server certificate not (?:verified|trusted)/.test(reason)) {
      // Trusted = the chain verified, so the name did not match (postconf(5) smtp_tls_security_level).
      const certError =
        open?.certError ??
        (open?.level === 'Trusted' ? 'certificate name does not match the next hop' : cleanReason(reason))
      return once({ ...base, tls: true, offersStartTls: true, certVerified: false, certError })
    }
    // Any other outcome after TLS came up: the session had TLS (a later SMTP error is not a TLS failure).
    // Below level verify (e.g. an MTA-STS policy in mode testing, which the socketmap does not
    // enforce) Postfix checks no name: Trusted = the chain verified, the name unknown; Untrusted =
    // the chain did not verify; Anonymous = no certificate (postconf(5) smtp_tls_security_level).
    if (open)
      return once({
        ...base,
        tls: true,
        offersStartTls: true,
        certVerified: open.level === 'Verified',
        certError: open.certError ?? LEVEL_ERROR[open.level],
        nameUnchecked: open.level === 'Trusted',
      })
    return []
  }
}

/**
 * Follows a log file from its end (lines written while linksec was down are
 * not read, so nothing is counted twice after a restart), from the start of
 * a new file after rotation (another inode) or truncation, polling every
 * `intervalMs`. At most `maxBytes` are read per poll; an overlong line is
 * skipped up to its newline.
 */
export interface LogFollower {
  /** Reads what was appended since the last poll (the timer calls it; tests may too). */
  poll(): Promise<void>
  stop(): void
}

export function followLog(
  file: string,
  onLine: (line: string) => void,
  opts: { intervalMs?: number; maxBytes?: number; onError?: (e: unknown) => void } = {},
): LogFollower {
  const maxBytes = opts.maxBytes ?? 1 << 20
  let ino: number | undefined
  let offset = 0
  let started = false
  let partial = ''
  let skipping = false
  let busy: Promise<void> | undefined
  let failed = false

  const take = (chunk: string) => {
    const parts = (partial + chunk).split('\n')
    partial = parts.pop()!
    for (const line of parts) {
      if (skipping) skipping = false
      else onLine(line.replace(/\r$/, ''))
    }
    if (partial.length > MAX_LINE) {
      partial = ''
      skipping = true
    }
  }

  const readNew = async () => {
    let st: fs.Stats
    try {
      st = await fs.promises.stat(file)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && !failed) opts.onError?.(e)
      failed = (e as NodeJS.ErrnoException).code !== 'ENOENT'
      if (!started) started = true // the file appears later: read it from its start
      ino = undefined
      offset = 0
      return
    }
    if (!started) {
      started = true
      ino = st.ino
      offset = st.size
      return
    }
    if (ino !== st.ino || st.size < offset) {
      ino = st.ino
      offset = 0
      partial = ''
      skipping = false
    }
    if (st.size === offset) return
    const len = Math.min(st.size - offset, maxBytes)
    const fh = await fs.promises.open(file, 'r')
    try {
      const buf = Buffer.alloc(len)
      const { bytesRead } = await fh.read(buf, 0, len, offset)
      offset += bytesRead
      take(buf.subarray(0, bytesRead).toString('latin1'))
      failed = false
    } finally {
      await fh.close()
    }
  }

  const poll = () =>
    (busy ??= readNew()
      .catch((e: unknown) => {
        if (!failed) opts.onError?.(e)
        failed = true
      })
      .finally(() => (busy = undefined)))

  void poll() // note where the file ends now
  const timer = setInterval(() => void poll(), opts.intervalMs ?? 1000)
  timer.unref()
  return { poll, stop: () => clearInterval(timer) }
}

/**
 * `linksec serve` with [tlsrpt] postfix_log set: follows the log and counts
 * each session Postfix logged under linksec's policy for its domain (the
 * answer the socketmap gave Postfix, from the same resolver and cache).
 */
export function startPostfixLogReader(rt: Runtime, opts: { intervalMs?: number } = {}): LogFollower {
  const cfg = rt.config.tlsrpt
  const file = path.resolve(rt.config.dir, cfg.postfix_log)
  const parser = new PostfixLogParser()
  let chain = Promise.resolve()
  const count = async (s: PostfixSession) => {
    const policy = await policyResolverFor(rt).resolve(s.domain)
    await recordSession(rt, policy, s)
  }
  const follower = followLog(
    file,
    (line) => {
      for (const s of parser.feed(line))
        chain = chain.then(() =>
          count(s).catch((e: unknown) =>
            rt.log.warn('TLS report outcome not recorded', { domain: s.domain, error: describeError(e) }),
          ),
        )
    },
    {
      intervalMs: opts.intervalMs,
      onError: (e) =>
        rt.log.warn('cannot read the Postfix log for TLS reports ([tlsrpt] postfix_log)', {
          file,
          error: describeError(e),
        }),
    },
  )
  if (fs.existsSync(file)) rt.log.info('reading Postfix TLS outcomes for TLS reports', { file })
  else
    rt.log.warn('the Postfix log for TLS reports is not there yet; it is read once it appears', {
      file,
      fix: 'check [tlsrpt] postfix_log (Postfix maillog_file or the syslog file)',
    })
  return {
    poll: async () => {
      await follower.poll()
      await chain
    },
    stop: () => follower.stop(),
  }
}
