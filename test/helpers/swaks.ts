/**
 * swaks against a loopback server, always with --server and --helo (never a
 * DNS lookup). Returns the transcript; bounded in time.
 */
import { spawn } from 'node:child_process'

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
  return new Promise((resolve, reject) => {
    const child = spawn('swaks', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30_000)
    child.on('error', reject)
    child.on('close', (status) => {
      clearTimeout(timer)
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
