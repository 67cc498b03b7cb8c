/**
 * The milters under comparison, started once per benchmark and shared by
 * every round: OpenDKIM in verify mode (the Debian package, through the
 * shared opendkim-up.sh) and `linksec serve`. Each exposes the Postfix
 * socket string, its process id (for CPU per message) and a stop function.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { freePort } from '../../test/helpers/ports'
import { startPeer, stopPeer } from './peers'

export interface RunningMilter {
  /** smtpd_milters value, e.g. inet:127.0.0.1:8891 */
  socket: string
  pid: number
  stop: () => Promise<void>
}

export async function startOpendkim(keysFile: string, authserv?: string): Promise<RunningMilter> {
  return startOpendkimMode({ MODE: 'v', KEYS: keysFile, ...(authserv ? { AUTHSERV: authserv } : {}) })
}

/**
 * OpenDKIM signing (rsa-sha256, relaxed/relaxed) for DOMAIN with selector
 * s1 and the PEM key in KEYFILE (opendkim-up.sh makes it the opendkim
 * user's, mode 0600); mail from 127.0.0.1 gets a DKIM-Signature.
 */
export async function startOpendkimSigner(domain: string, keyFile: string): Promise<RunningMilter> {
  return startOpendkimMode({ MODE: 's', SIGN_DOMAIN: domain, SIGN_SELECTOR: 's1', SIGN_KEY: keyFile })
}

async function startOpendkimMode(env: Record<string, string>): Promise<RunningMilter> {
  const port = await freePort()
  const vars = await startPeer('opendkim-up.sh', { PORT: String(port), ...env })
  const dir = vars.OD_DIR
  if (!dir) throw new Error('opendkim-up.sh printed no OD_DIR')
  const pid = Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8').trim())
  return { socket: `inet:127.0.0.1:${port}`, pid, stop: () => stopPeer(dir) }
}

/** utime + stime of a process in ms (from /proc/PID/stat), NaN if it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // After "(comm) ", field 3 is state; utime and stime are fields 14 and 15 of the full line.
    const ticks = Number(fields[11]) + Number(fields[12])
    return (ticks * 1000) / CLOCK_TICKS
  } catch {
    return NaN
  }
}

/** Linux USER_HZ; 100 on every mainstream kernel build. */
const CLOCK_TICKS = 100

/** Resident set size of a process in MB (VmRSS in /proc/PID/status), NaN if it is gone. */
export function rssMB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : NaN
  } catch {
    return NaN
  }
}
