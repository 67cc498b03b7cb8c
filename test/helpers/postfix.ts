/**
 * Real peers for integration tests and benchmarks: a private Postfix
 * instance with an smtp-sink next hop (shared/peers/postfix-up.sh), swaks as
 * the SMTP client, and `linksec serve` as a child process on a temp config
 * directory. Every port comes from freePort(); every stop() cleans up.
 *
 *   const pf = await startPostfix({ milter: serve.milterAddress })
 *   const r = swaks(pf, { tls: true, headers: ['Link-Security-Required: 3'] })
 *   const [msg] = await pf.waitForSink(1)
 *   await pf.stop(); await serve.stop()
 *
 * With `hosts`, Postfix runs in a private mount namespace whose /etc/hosts
 * names the test domains (postfix-hosts.ts): for tests where Postfix itself
 * must find a domain's server, as FILTER with an empty next hop makes it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { freePort } from './ports'
import { namespacedBash, writeHostsFiles } from './postfix-hosts'

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')
export const PEERS_DIR = path.resolve(REPO_ROOT, '..', 'shared', 'peers')
const SBIN_PATH = `${process.env.PATH}:/usr/sbin:/usr/local/sbin:/sbin`

export interface PostfixOptions {
  /** smtpd_milters, e.g. "inet:127.0.0.1:8891" (several: comma-separated). */
  milter?: string
  /** What Postfix does when the milter is unreachable or fails (default tempfail). */
  milterDefaultAction?: 'accept' | 'tempfail' | 'reject' | 'quarantine'
  /** Keep every delivered message as a file (default true; benchmarks turn it off). */
  sinkDump?: boolean
  /** Offer STARTTLS with a self-signed certificate (default true). */
  tls?: boolean
  /** Extra main.cf lines, appended last (EXTRA_MAIN_CF). */
  extraMainCf?: string[]
  /** Short milter timeouts 5 s/10 s/30 s (default true). */
  milterTimeouts?: boolean
  /** Postfix in_flow_delay, e.g. "0s" for benchmarks. */
  inFlowDelay?: string
  /**
   * Name -> address for Postfix's own lookups. Postfix then runs in a private
   * mount namespace that resolves these names (and localhost) and nothing
   * else; needs privateHostsSupported().
   */
  hosts?: Record<string, string>
}

export interface SinkMessage {
  file: string
  /** The whole dump, smtp-sink's own X-* lines and Received: included. */
  raw: string
  /** The message as Postfix relayed it (smtp-sink's prologue removed). */
  message: string
  /** Header fields of `message`, unfolded, in order. */
  headers: Array<[name: string, value: string]>
}

export interface PostfixInstance {
  dir: string
  conf: string
  port: number
  sinkPort: number
  sinkMessages(): SinkMessage[]
  /** Waits until at least `count` messages reached the sink. */
  /** Waits until COUNT whole messages are at the sink (and, with MATCH, one of them matches). */
  waitForSink(count: number, timeoutMs?: number, match?: (m: SinkMessage) => boolean): Promise<SinkMessage[]>
  maillog(): string
  /** Messages still in Postfix's queue (incoming, active, deferred, maildrop). */
  queued(): number
  /** `postconf -e` each `key = value` into this instance's main.cf (throws on error). */
  postconf(settings: string[]): void
  /** `postfix reload`, resolved once master has logged the reload. */
  reload(): Promise<void>
  stop(opts?: { keep?: boolean }): Promise<void>
}

export async function startPostfix(opts: PostfixOptions = {}): Promise<PostfixInstance> {
  const [port, sinkPort] = [await freePort(), await freePort()]
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-pf-'))
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PATH: SBIN_PATH,
    PF_DIR: dir,
    PORT: String(port),
    SINK_PORT: String(sinkPort),
    SINK_DUMP: opts.sinkDump === false ? '0' : '1',
    TLS: opts.tls === false ? '0' : '1',
    MILTER: opts.milter ?? '',
    MILTER_DEFAULT_ACTION: opts.milterDefaultAction ?? 'tempfail',
    MILTER_TIMEOUTS: opts.milterTimeouts === false ? '0' : '1',
    EXTRA_MAIN_CF: (opts.extraMainCf ?? []).join('\n'),
    IN_FLOW_DELAY: opts.inFlowDelay ?? '',
  }
  const upScript = path.join(PEERS_DIR, 'postfix-up.sh')
  const nsDir = opts.hosts ? fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-pf-ns-')) : undefined
  const [cmd, args] = nsDir
    ? ['unshare', namespacedBash(writeHostsFiles(nsDir, opts.hosts!), upScript)]
    : ['bash', [upScript]]
  const up = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: 30000 })
  if (up.status !== 0) {
    for (const d of [dir, nsDir]) if (d) fs.rmSync(d, { recursive: true, force: true })
    throw new Error(`postfix-up.sh failed (${up.status}): ${up.stderr}`)
  }
  return postfixInstance(dir, port, sinkPort, nsDir)
}

/** Names and sizes of the sink's dump files, as one comparable string. */
function sinkSizes(sinkDir: string): { count: number; key: string } {
  const files = fs.readdirSync(sinkDir).sort()
  return {
    count: files.length,
    key: files.map((f) => `${f}:${fs.statSync(path.join(sinkDir, f)).size}`).join(','),
  }
}

function postfixInstance(dir: string, port: number, sinkPort: number, nsDir?: string): PostfixInstance {
  const sinkDir = path.join(dir, 'sink')
  const sinkMessages = () =>
    fs
      .readdirSync(sinkDir)
      .sort()
      .map((f) => parseSinkDump(path.join(sinkDir, f)))
  let stopped = false
  return {
    dir,
    conf: path.join(dir, 'etc'),
    port,
    sinkPort,
    sinkMessages,
    async waitForSink(count, timeoutMs = 15000, match) {
      const end = Date.now() + timeoutMs
      // smtp-sink writes a dump while the message arrives: only read once the
      // files have kept their sizes for one poll, or a half-written dump (no
      // Subject yet) is taken for a whole message.
      let lastSizes = ''
      for (;;) {
        const sizes = sinkSizes(sinkDir)
        if (sizes.count >= count && sizes.key === lastSizes) {
          const got = sinkMessages()
          if (!match || got.some(match)) return got
        }
        if (Date.now() > end)
          throw new Error(`${sizes.count} of ${count} messages reached the sink in ${timeoutMs} ms`)
        lastSizes = sizes.count >= count ? sizes.key : ''
        await sleep(50)
      }
    },
    maillog: () => readIfExists(path.join(dir, 'log', 'maillog')),
    queued: () => countQueued(dir),
    postconf: (settings) => postconf(path.join(dir, 'etc'), settings),
    reload: () => reload(dir),
    async stop({ keep = false } = {}) {
      if (stopped) return
      stopped = true
      spawnSync('bash', [path.join(PEERS_DIR, 'postfix-down.sh'), dir], {
        env: { ...process.env, PATH: SBIN_PATH, KEEP: keep ? '1' : '0' },
        encoding: 'utf8',
        timeout: 30000,
      })
      if (nsDir) fs.rmSync(nsDir, { recursive: true, force: true })
    },
  }
}

function postconf(conf: string, settings: string[]): void {
  if (settings.length === 0) return
  const r = spawnSync('postconf', ['-c', conf, '-e', ...settings], {
    env: { ...process.env, PATH: SBIN_PATH },
    encoding: 'utf8',
    timeout: 30000,
  })
  if (r.status !== 0) throw new Error(`postconf -e failed (${r.status}): ${r.stderr}`)
}

/** Reloads and waits (at most 15 s) for master's "reload" log line, so new settings are in force. */
async function reload(dir: string): Promise<void> {
  const log = path.join(dir, 'log', 'maillog')
  const reloads = () => (readIfExists(log).match(/postfix\/master\[\d+\]: reload /g) ?? []).length
  const before = reloads()
  const r = spawnSync('postfix', ['-c', path.join(dir, 'etc'), 'reload'], {
    env: { ...process.env, PATH: SBIN_PATH },
    encoding: 'utf8',
    timeout: 30000,
  })
  if (r.status !== 0) throw new Error(`postfix reload failed (${r.status}): ${r.stderr}`)
  if (!(await waitFor(() => reloads() > before, 15000)))
    throw new Error(`postfix did not log its reload within 15 s:\n${readIfExists(log).slice(-2000)}`)
}

function countQueued(dir: string): number {
  const subdirs = ['incoming', 'active', 'deferred', 'maildrop'].map((d) => path.join(dir, 'spool', d))
  const walk = (d: string): number =>
    fs.existsSync(d)
      ? fs
          .readdirSync(d, { withFileTypes: true })
          .reduce((n, e) => n + (e.isDirectory() ? walk(path.join(d, e.name)) : 1), 0)
      : 0
  return subdirs.reduce((n, d) => n + walk(d), 0)
}

/** smtp-sink -d writes X-Client-Addr/-Proto, X-Helo-Args, X-Mail-Args, X-Rcpt-Args and its Received: first. */
export function parseSinkDump(file: string): SinkMessage {
  const raw = fs.readFileSync(file, 'utf8')
  const lines = raw.split(/\r?\n/)
  let i = 0
  while (i < lines.length && /^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):/.test(lines[i]!))
    i++
  if (/^Received:/.test(lines[i] ?? '')) {
    i++
    while (i < lines.length && /^[ \t]/.test(lines[i]!)) i++
  }
  const message = lines.slice(i).join('\n')
  return { file, raw, message, headers: headerFields(message) }
}

export function headerFields(message: string): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const line of message.split(/\r?\n/)) {
    if (line === '') break
    if (/^[ \t]/.test(line) && out.length) out[out.length - 1]![1] += ' ' + line.trim()
    else {
      const at = line.indexOf(':')
      if (at > 0) out.push([line.slice(0, at), line.slice(at + 1).trim()])
    }
  }
  return out
}

// ---------------------------------------------------------------- swaks

export interface SwaksOptions {
  from?: string
  to?: string
  helo?: string
  tls?: boolean
  /** Extra header lines, e.g. "Link-Security-Required: 3". */
  headers?: string[]
  /** A whole message (replaces swaks' default body and headers). */
  data?: string
  body?: string
}

export interface SwaksResult {
  status: number | null
  /** The whole SMTP transcript (client and server lines). */
  transcript: string
  /** The server's reply to the end of DATA ("250 2.0.0 Ok: queued ...", "550 5.7.10 ..."). */
  dataReply: string
}

/** One message with swaks, always to 127.0.0.1:PORT with an explicit HELO (no DNS). */
export function swaks(pf: { port: number }, o: SwaksOptions = {}): SwaksResult {
  const args = [
    '--server',
    `127.0.0.1:${pf.port}`,
    '--helo',
    o.helo ?? 'client.example.test',
    '--from',
    o.from ?? 'alice@example.org',
    '--to',
    o.to ?? 'bob@example.net',
    '--timeout',
    '30',
  ]
  if (o.tls) args.push('--tls')
  for (const h of o.headers ?? []) args.push('--add-header', h)
  if (o.body) args.push('--body', o.body)
  let tmp: string | undefined
  if (o.data !== undefined) {
    tmp = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'swaks-')), 'message.eml')
    fs.writeFileSync(tmp, o.data)
    args.push('--data', `@${tmp}`)
  }
  // swaks echoes the whole message: room for multi-megabyte ones (spawnSync's default is 1 MB).
  const r = spawnSync('swaks', args, { encoding: 'utf8', timeout: 60000, maxBuffer: 256 * 1024 * 1024 })
  if (tmp) fs.rmSync(path.dirname(tmp), { recursive: true, force: true })
  const transcript = `${r.stdout}${r.stderr}`
  // The server line right after the lone "." that ends DATA (" -> ." plain, " ~> ." under TLS).
  const lines = transcript.split(/\r?\n/)
  const dot = lines.findIndex((l) => /^ [-~]> \.$/.test(l))
  const reply = dot >= 0 ? /^<\S*\s+(\d{3}[ -].*)$/.exec(lines[dot + 1] ?? '') : null
  return { status: r.status, transcript, dataReply: reply?.[1] ?? '' }
}

// ---------------------------------------------------------------- libmilter test milter

export interface TestMilter {
  /** Postfix spelling, e.g. "inet:127.0.0.1:40123". */
  address: string
  stop(): void
}

/** shared/peers/test-milter.py (python3-milter, libmilter): adds X-Test-Milter: ok at end of message. */
export async function startTestMilter(): Promise<TestMilter> {
  const port = await freePort()
  const up = spawnSync('bash', [path.join(PEERS_DIR, 'test-milter-up.sh')], {
    env: { ...process.env, PORT: String(port) },
    encoding: 'utf8',
    timeout: 30000,
  })
  if (up.status !== 0) throw new Error(`test-milter-up.sh failed: ${up.stderr}`)
  const dir = /TM_DIR='([^']+)'/.exec(up.stdout)![1]!
  return {
    address: `inet:127.0.0.1:${port}`,
    stop: () => void spawnSync('bash', [path.join(PEERS_DIR, 'peer-down.sh'), dir], { timeout: 30000 }),
  }
}

// ---------------------------------------------------------------- linksec serve

export interface ServeOptions {
  /** linksec.ini sections/keys written on top of the defaults; listen ports are filled in. */
  ini?: Record<string, Record<string, string | number | boolean>>
  /** [milter] listen; default inet:127.0.0.1:<free port>. */
  milterListen?: string
  /** Extra files for the config dir, e.g. { 'linksec.domains.json': '...' }. */
  files?: Record<string, string>
}

export interface ServeInstance {
  milterAddress: string
  /** [socketmap] listen, e.g. inet:127.0.0.1:40123. */
  socketmapAddress: string
  /** [http] listen, e.g. 127.0.0.1:40124. */
  httpAddress: string
  configDir: string
  proc: ChildProcess
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string
  /** Sends a signal and waits for the exit code (removes the config dir). */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Writes a config dir: the package's config/ files plus a linksec.ini holding only `ini`, then `files`. */
export function writeConfigDir(ini: ServeOptions['ini'] = {}, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-conf-'))
  fs.chmodSync(dir, 0o755)
  fs.cpSync(path.join(REPO_ROOT, 'config'), dir, { recursive: true })
  const text = Object.entries(ini)
    .map(
      ([sec, keys]) =>
        `[${sec}]\n${Object.entries(keys)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n')}\n`,
    )
    .join('\n')
  fs.writeFileSync(path.join(dir, 'linksec.ini'), text)
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content)
  return dir
}

export async function startLinksecServe(opts: ServeOptions = {}): Promise<ServeInstance> {
  const milterListen = opts.milterListen ?? `inet:127.0.0.1:${await freePort()}`
  const ini = {
    ...opts.ini,
    milter: { listen: milterListen, ...opts.ini?.milter },
    socketmap: { listen: `inet:127.0.0.1:${await freePort()}`, ...opts.ini?.socketmap },
    http: { listen: `127.0.0.1:${await freePort()}`, ...opts.ini?.http },
    // Never the system resolver (it is not on loopback): unless the test names its own
    // DNS server, lookups go to a loopback port nobody listens on and fail at once, the
    // same "could not learn" every time, whatever the machine's resolver answers.
    resolver: { servers: `127.0.0.1:${await freePort()}`, timeout_ms: 2000, ...opts.ini?.resolver },
  }
  const configDir = writeConfigDir(ini, opts.files)
  const proc = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'dist', 'bin', 'linksec.js'), 'serve', '--config', configDir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()))
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const instance: ServeInstance = {
    milterAddress: milterListen,
    socketmapAddress: ini.socketmap.listen,
    httpAddress: ini.http.listen,
    configDir,
    proc,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      const code = await Promise.race([exited, sleep(15000).then(() => 'timeout' as const)])
      if (code === 'timeout') proc.kill('SIGKILL')
      fs.rmSync(configDir, { recursive: true, force: true })
      return code === 'timeout' ? null : code
    },
  }
  // Every enabled listener prints one line once it listens (bin/commands/serve.ts).
  const listeners = (['milter', 'socketmap', 'http'] as const).filter(
    (n) => String((ini[n] as Record<string, unknown>).enabled) !== 'false',
  )
  const ready = await Promise.race([
    waitFor(() => listeners.every((n) => out.includes(`${n} listening on`)), 15000),
    exited.then(() => false),
  ])
  if (!ready) {
    await instance.stop('SIGKILL')
    throw new Error(`linksec serve did not start:\n${out}`)
  }
  return instance
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) return false
    await sleep(20)
  }
  return true
}

function readIfExists(file: string): string {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
