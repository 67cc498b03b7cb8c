/**
 * swaks against a loopback server, always with --server and --helo (never a
 * DNS lookup). Returns the transcript; bounded in time.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export interface SwaksResult {
  status: number | null
  /** swaks' transcript: `<-` server lines, `->` client lines (`<~`/`~>` under TLS). */
  out: string
}

export interface SwaksOptions {
  port: number
  tls?: boolean
  from?: string
  to?: string
  /** Extra headers, e.g. { 'Link-Security-Required': '3' }. */
  headers?: Record<string, string>
  /** Raw header lines (for repeats, e.g. two Authentication-Results). */
  headerLines?: string[]
  quitAfter?: 'CONNECT' | 'EHLO' | 'TLS' | 'MAIL' | 'RCPT'
  /** The whole message (swaks --data @file) instead of swaks' own. */
  data?: string | Buffer
  timeoutMs?: number
}

/**
 * swaks 20201014 has no option for MAIL FROM parameters; it writes
 * `MAIL FROM:<${from}>`, so this address makes it send
 * `MAIL FROM:<addr> REQUIRETLS X-SWAKS=<>` (the dummy parameter eats the `>`).
 */
export function requireTlsFrom(addr: string): string {
  return `${addr}> REQUIRETLS X-SWAKS=<`
}

export function swaks(o: SwaksOptions): Promise<SwaksResult> {
  const args = ['--server', `127.0.0.1:${o.port}`, '--helo', 'client.test', '--timeout', '20']
  args.push('--from', o.from ?? 'alice@example.org', '--to', o.to ?? 'bob@example.net')
  if (o.tls) args.push('--tls')
  if (o.quitAfter) args.push('--quit-after', o.quitAfter)
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('--add-header', `${k}: ${v}`)
  for (const line of o.headerLines ?? []) args.push('--add-header', line)
  const tmp = o.data === undefined ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-swaks-'))
  if (tmp) {
    fs.writeFileSync(path.join(tmp, 'message.eml'), o.data!)
    args.push('--data', `@${path.join(tmp, 'message.eml')}`)
  }
  const clean = () => tmp && fs.rmSync(tmp, { recursive: true, force: true })
  return new Promise((resolve, reject) => {
    const child = spawn('swaks', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30_000)
    child.on('error', (e) => {
      clean()
      reject(e)
    })
    child.on('close', (status) => {
      clearTimeout(timer)
      clean()
      resolve({ status, out })
    })
  })
}

/** The EHLO keywords of the last EHLO reply in a transcript (after STARTTLS when --tls). */
export function lastEhloKeywords(out: string): string[] {
  const blocks = out.split(/[~-]> EHLO /).slice(1)
  const last = blocks[blocks.length - 1] ?? ''
  return last
    .split('\n')
    .map((l) => /^<[-~]\s+250[- ](.*)$/.exec(l)?.[1]?.trim())
    .filter((k): k is string => k !== undefined)
    .slice(1) // the greeting line
}

/** The server's reply lines (code + text) in order. */
export function serverReplies(out: string): string[] {
  return out
    .split('\n')
    .map((l) => /^<(?:-|~|\*\*|~\*)\s+(\d{3}[ -].*)$/.exec(l)?.[1]?.trim())
    .filter((l): l is string => l !== undefined)
}

/** The server's reply to the lone "." that ends DATA ('' if the transcript has none). */
export function dataReply(out: string): string {
  const lines = out.split(/\r?\n/)
  const dot = lines.findIndex((l) => /^ [-~]> \.$/.test(l))
  return (dot >= 0 ? /^<\S*\s+(\d{3}[ -].*)$/.exec(lines[dot + 1] ?? '') : null)?.[1] ?? ''
}
