/**
 * Watching one outbound SMTP session of Haraka, and holding MAIL FROM until
 * the no-downgrade rule has spoken.
 *
 * Haraka 3.3.4 gives plugins no view of its client conversation: the EHLO
 * keywords, the TLS state and the certificate check live in closures inside
 * HMailItem.try_deliver_host_on_socket (outbound/hmail.js). What a plugin can
 * reach is the socket that function is handed, so the probe wraps four
 * things on that one socket instance (nothing global, nothing on other
 * messages):
 * - `write`: to know which command a reply answers, to hold `MAIL FROM`
 *   until decideHop() says deliver (and add ` REQUIRETLS` when the hop
 *   offers it, RFC 8689 §4.2), and to end the session instead when it says no;
 * - a `line` listener, put first, that reads the greeting and EHLO replies
 *   before Haraka acts on them (LINKSEC, REQUIRETLS, STARTTLS keywords);
 * - `upgrade` (tls_socket's STARTTLS): Haraka's forced TLS always demands a
 *   WebPKI-verified certificate, which levels 1-3 do not. We record the real
 *   check and pass it on to Haraka unchanged (its `secured verified=…` log
 *   line stays true); when the rule needs no verified certificate, the probe
 *   first lifts Haraka's forced-TLS flag for the rest of this session
 *   (`relaxForcedTls`: the session is already encrypted, and MAIL FROM is
 *   still held until the rule says deliver), and says which rule applied.
 * A refusal ends the session with QUIT and an `error` event on the socket,
 * which Haraka's own handler turns into "try the next MX" — its normal path.
 * That handler logs every such error at ERROR; the attempt (attempt.ts)
 * logs the refusal itself with the decision fields and turns Haraka's line
 * for a HopRefused into a debug line.
 */
import { findEhloDeclaration, parseBannerToken, type Level } from '../../core/levels'
import type { HopVerdict, LinkFacts } from '../../core/enforce'
import type { HarakaClientSocket, UpgradeCallback } from './hmail'

export interface ProbeOptions {
  hop: string
  /** decideHop() over this session's facts. */
  decide(facts: LinkFacts): HopVerdict
  /** Whether a certificate that does not verify must stop the session (N=4, REQUIRETLS, policy). */
  needVerifiedCertificate: boolean
  /** MX name checked against the destination's MTA-STS/static list (undefined: no list). */
  mxMatchesPolicy?: boolean
  /** Called with each complete EHLO reply (keywords only) and whether it came under TLS. */
  onEhlo?(lines: readonly string[], tls: boolean): void
  /** The rule refused this hop at MAIL FROM; the session is being ended. */
  onRefused(verdict: Extract<HopVerdict, { action: 'bounce' | 'retry' }>, facts: LinkFacts): void
  /**
   * The certificate did not verify and the rule does not need it to: stop
   * Haraka's forced TLS from ending the session over it (and log why).
   */
  relaxForcedTls(certError: string | undefined): void
}

export interface SessionProbe {
  facts: LinkFacts
  /** The decision taken at MAIL FROM, if the session got that far. */
  verdict?: HopVerdict
  /** An EHLO reply was read, so the facts are complete enough to decide. */
  sawEhlo: boolean
  /** The refusal of this hop was logged (at MAIL FROM or when the attempt ended). */
  logged?: boolean
}

/** What every HopRefused message starts with: Haraka's log line for it is recognised by this. */
export const HOP_REFUSED_PREFIX = 'linksec refused '

/** Marks the error the probe raises to end a refused session, so it is not read as a TLS failure. */
export class HopRefused extends Error {
  readonly linksec = true
}

/** `250-LINKSEC 3 ttl=86400` -> `LINKSEC 3 ttl=86400`. */
function keyword(line: string): string {
  return line.replace(/^\d{3}[ -]/, '').trim()
}

function hasKeyword(lines: readonly string[], word: string): boolean {
  return lines.some((l) => l.split(/\s+/)[0]?.toUpperCase() === word)
}

function declared(lines: readonly string[]): Level | undefined {
  const d = findEhloDeclaration(lines)
  return d?.ok ? d.value.level : undefined
}

export function probeSession(socket: HarakaClientSocket, opts: ProbeOptions): SessionProbe {
  const probe: SessionProbe = {
    facts: {
      hop: opts.hop,
      tls: false,
      offersStartTls: false,
      certVerified: false,
      offersRequireTls: false,
      mxMatchesPolicy: opts.mxMatchesPolicy,
    },
    sawEhlo: false,
  }
  const state = {
    command: 'CONNECT',
    lines: [] as string[],
    inData: false,
    banner: undefined as Level | undefined,
  }
  watchReplies(socket, probe, state, opts)
  wrapUpgrade(socket, probe, opts)
  wrapWrite(socket, probe, state, opts)
  return probe
}

type ProbeState = { command: string; lines: string[]; inData: boolean; banner: Level | undefined }

function watchReplies(
  socket: HarakaClientSocket,
  probe: SessionProbe,
  state: ProbeState,
  opts: ProbeOptions,
) {
  // Prepended: Haraka's own listener sends the next command synchronously
  // from the last reply line, so we must have read that line first.
  socket.prependListener('line', (raw: Buffer | string) => {
    const line = raw.toString().replace(/\r?\n$/, '')
    if (state.command === 'CONNECT') {
      const b = parseBannerToken(line.replace(/^\d{3}[ -]/, ''))
      if (b?.ok) state.banner = b.value.level
      return
    }
    if (state.command !== 'EHLO') return
    state.lines.push(keyword(line))
    if (line.charAt(3) !== ' ') return
    endOfEhlo(socket, probe, state, opts)
  })
}

/**
 * Records why a STARTTLS handshake failed. Call it after Haraka's
 * try_deliver_host_on_socket has run: that function first removes every
 * `error` listener; prepended, ours runs before Haraka's handler, which may
 * give up on the message synchronously.
 */
export function watchErrors(socket: HarakaClientSocket, probe: SessionProbe): void {
  socket.prependListener('error', (err: Error & { source?: string }) => {
    if (err instanceof HopRefused) return
    if (err?.source === 'tls' && !probe.facts.tls) probe.facts.tlsError = err.message
  })
}

function endOfEhlo(socket: HarakaClientSocket, probe: SessionProbe, state: ProbeState, opts: ProbeOptions) {
  const tls = socket.isEncrypted()
  const f = probe.facts
  if (!tls) f.offersStartTls = hasKeyword(state.lines, 'STARTTLS')
  // Only the EHLO after STARTTLS speaks for a TLS session (RFC 3207 §4.2).
  f.peerEhloDeclaration = declared(state.lines) ?? state.banner
  f.offersRequireTls = tls && hasKeyword(state.lines, 'REQUIRETLS')
  probe.sawEhlo = true
  opts.onEhlo?.(state.lines, tls)
}

function wrapUpgrade(socket: HarakaClientSocket, probe: SessionProbe, opts: ProbeOptions) {
  const upgrade = socket.upgrade.bind(socket)
  socket.upgrade = (options: Record<string, unknown>, cb: UpgradeCallback) => {
    // We want the handshake to finish and report, not abort: the decision is ours.
    upgrade({ ...options, rejectUnauthorized: false }, (authorized, verifyError, cert, cipher) => {
      probe.facts.tls = true
      probe.facts.certVerified = authorized
      if (!authorized && verifyError)
        probe.facts.certError = verifyError instanceof Error ? verifyError.message : verifyError
      // Haraka hears the truth; only its forced-TLS consequence is lifted, and only where the rule allows it.
      if (!authorized && !opts.needVerifiedCertificate) opts.relaxForcedTls(probe.facts.certError)
      cb(authorized, verifyError, cert, cipher)
    })
  }
}

function wrapWrite(socket: HarakaClientSocket, probe: SessionProbe, state: ProbeState, opts: ProbeOptions) {
  const write = socket.write.bind(socket) as (...a: unknown[]) => boolean
  socket.write = (data: string | Buffer, ...rest: unknown[]) => {
    if (typeof data !== 'string' || state.inData) return write(data, ...rest)
    const command = /^([A-Za-z]+)/.exec(data)?.[1]?.toUpperCase() ?? ''
    state.command = command === 'LHLO' || command === 'HELO' ? 'EHLO' : command
    if (state.command === 'EHLO') state.lines = []
    if (command === 'DATA') state.inData = true
    if (command !== 'MAIL') return write(data, ...rest)
    probe.facts.tls = socket.isEncrypted()
    const verdict = opts.decide(probe.facts)
    probe.verdict = verdict
    if (verdict.action === 'deliver') {
      const line = verdict.passRequireTls ? data.replace(/\r?\n$/, ' REQUIRETLS\r\n') : data
      return write(line, ...rest)
    }
    opts.onRefused(verdict, probe.facts)
    probe.logged = true
    write('QUIT\r\n')
    // After Haraka's send_command returns: its error handler moves on to the next MX.
    setImmediate(() =>
      socket.emit('error', new HopRefused(`${HOP_REFUSED_PREFIX}${probe.facts.hop}: ${verdict.reason}`)),
    )
    return true
  }
}
