/**
 * A real Haraka on loopback with linksec installed the way an operator does
 * it: `haraka -i DIR`, `npm install <this repo>` inside DIR (npm links a local
 * directory: node_modules/linksec -> repo, no network), `linksec` in
 * config/plugins. For Haraka engineers, benchmarks, enforcement and
 * signature tests alike.
 *
 *   const h = await startHaraka({ linksec: { main: { mailboxes_tls_only: true } } })
 *   try {
 *     // swaks --server 127.0.0.1:${h.port} --helo client.test …
 *     const [msg] = await h.waitForQueued(1)
 *   } finally {
 *     await h.stop()
 *   }
 *
 * What the instance has:
 * - config/plugins: `tls`, `linksec`, then the test plugins below (override
 *   with `plugins`); `config/smtp.ini` listens on 127.0.0.1:<freePort>, one
 *   process (no cluster); a self-signed cert for `mx.linksec.test` (or yours:
 *   `tlsKeyPem`/`tlsCertPem`, e.g. from test/helpers/test-ca.ts).
 * - Test plugins written into DIR/plugins (`BUILTIN_PLUGINS`):
 *   `test_no_dns`  answers Haraka's reverse-DNS step with "localhost": Haraka
 *                  core otherwise calls dns.reverse() for EVERY connection,
 *                  which would send a PTR query off the machine. Always loaded.
 *   `test_sink`    accepts every recipient and, at `queue`, writes the message
 *                  to DIR/sink/<uuid>.eml and {mail_from, rcpt_to, notes} to
 *                  <uuid>.json (read them with `queued()`/`waitForQueued()`).
 *   `test_relay`   marks every connection as relaying, so accepted mail goes
 *                  to `queue_outbound` and Haraka's outbound delivers it.
 *   `test_mx`      pins outbound next hops: config/test_mx.ini
 *                  `[domains]\nexample.net=127.0.0.1:2526` (`*` = any);
 *                  get_mx answers from it and DENYSOFTs the rest, so outbound
 *                  NEVER does an MX lookup. Use `test_relay` + `test_mx` (and
 *                  no `test_sink`) for outbound tests: `plugins: ['tls',
 *                  'linksec', 'test_relay', 'test_mx']`, `testMx: {...}`.
 * - Your own plugins: `localPlugins: { name: 'exports.hook_x = …' }`; any
 *   other config file: `config: { 'outbound.ini': '…' }`.
 * - Bounce template: none, as `haraka -i` leaves it (the harness checks);
 *   `bounceTemplate: 'haraka'` copies Haraka's shipped
 *   config/outbound.bounce_message, as an operator who customised it has one.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { freePort, waitForPort } from './ports'

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')
const HARAKA_BIN = path.join(REPO_ROOT, 'node_modules', 'Haraka', 'bin', 'haraka')
const BOUNCE_TEMPLATE = path.join(REPO_ROOT, 'node_modules', 'Haraka', 'config', 'outbound.bounce_message')
export const HARAKA_HOSTNAME = 'mx.linksec.test'
/** authserv-id the harness writes into linksec.ini unless you set one. */
export const TEST_AUTHSERV_ID = 'mx.linksec.test'

type IniValue = string | number | boolean | readonly string[]
export type IniSections = Record<string, Record<string, IniValue>>

export interface HarakaOptions {
  /** linksec.ini overrides by section; [main] authserv_id defaults to TEST_AUTHSERV_ID. */
  linksec?: IniSections
  /** Raw linksec.ini text instead (e.g. to test a broken file). */
  linksecIniText?: string
  /** config/plugins, in order; default ['tls', 'linksec', 'test_sink']. test_no_dns is always first. */
  plugins?: string[]
  /** Extra plain plugins: name -> JavaScript source, written to DIR/plugins/<name>.js. */
  localPlugins?: Record<string, string>
  /** Extra config files: path relative to DIR/config -> content. */
  config?: Record<string, string>
  /** For test_mx: domain (or '*') -> 'HOST:PORT'. */
  testMx?: Record<string, string>
  /** Own TLS identity; default a self-signed cert for mx.linksec.test. */
  tlsKeyPem?: string
  tlsCertPem?: string
  /** Write no tls.ini, key, certificate or dhparams (what a fresh `haraka -i` has). */
  noCertificate?: boolean
  /** Haraka log level (data, protocol, debug, info, notice, warn, error); default info. */
  logLevel?: string
  /** 'none' (default): no config/outbound.bounce_message, as `haraka -i` makes it; 'haraka': Haraka's own. */
  bounceTemplate?: 'none' | 'haraka'
}

export interface QueuedMessage {
  uuid: string
  /** The message as Haraka would deliver it (CRLF line ends). */
  raw: string
  mailFrom: string
  rcptTo: string[]
  /** transaction.notes as the queue plugin saw them (linksec's under .linksec). */
  notes: Record<string, unknown>
}

export interface HarakaInstance {
  dir: string
  host: string
  port: number
  /** The Haraka process (benchmarks read its CPU time from /proc). */
  pid: number
  /** Haraka's stdout+stderr so far. */
  log(): string
  /** Messages the test_sink accepted so far. */
  queued(): QueuedMessage[]
  /** Waits (bounded) until at least n messages are queued. */
  waitForQueued(n: number, timeoutMs?: number): Promise<QueuedMessage[]>
  /** Rewrites config/linksec.ini (Haraka watches it and reloads the plugin's config). */
  writeLinksecIni(sections: IniSections | string): void
  /** Waits (bounded) until the log matches. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<void>
  stop(): Promise<void>
}

/** The test plugins the harness can load by name (plain Haraka plugins, JavaScript). */
export const BUILTIN_PLUGINS: Record<string, string> = {
  test_no_dns: `
exports.hook_lookup_rdns = (next) => next(OK, 'localhost')
`,
  test_sink: `
const fs = require('node:fs')
const path = require('node:path')
const dir = path.join(process.env.HARAKA, 'sink')
fs.mkdirSync(dir, { recursive: true })
exports.register = function () {
  this.register_hook('rcpt', 'accept_rcpt', 90)
  this.register_hook('queue', 'write_message', 90)
}
exports.accept_rcpt = (next) => next(OK)
exports.write_message = function (next, connection) {
  const txn = connection.transaction
  const base = path.join(dir, txn.uuid)
  const ws = fs.createWriteStream(base + '.eml')
  ws.once('close', () => {
    const meta = { mail_from: String(txn.mail_from.address), rcpt_to: txn.rcpt_to.map((r) => String(r.address)), notes: txn.notes }
    fs.writeFileSync(base + '.json.tmp', JSON.stringify(meta))
    fs.renameSync(base + '.json.tmp', base + '.json')
    next(OK, 'queued by test_sink ' + txn.uuid)
  })
  // The message itself: the stream stores SMTP's dot-stuffed lines and this undoes it (RFC 5321 4.5.2).
  txn.message_stream.pipe(ws, { line_endings: '\\r\\n', dot_stuffed: true })
}
`,
  test_relay: `
exports.hook_connect_init = (next, connection) => { connection.relaying = true; next() }
`,
  test_mx: `
exports.register = function () { this.load_ini(); this.register_hook('get_mx', 'pinned_mx', -100) }
exports.load_ini = function () { this.cfg = this.config.get('test_mx.ini', () => this.load_ini()) }
exports.pinned_mx = function (next, hmail, domain) {
  const hop = (this.cfg.domains || {})[domain] || (this.cfg.domains || {})['*']
  if (!hop) return next(DENYSOFT, 'test_mx: no pinned next hop for ' + domain)
  const [exchange, port] = hop.split(':')
  next(OK, { exchange, port: Number(port || 25), priority: 0 })
}
`,
}

export function toIni(sections: IniSections): string {
  const out: string[] = []
  for (const [name, keys] of Object.entries(sections)) {
    out.push(`[${name}]`)
    for (const [k, v] of Object.entries(keys)) out.push(`${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    out.push('')
  }
  return out.join('\n')
}

/**
 * Harness defaults: our authserv-id, and the metrics listener on an ephemeral
 * port so parallel Haraka instances never fight over 127.0.0.1:9464.
 */
function withAuthservId(sections: IniSections = {}): IniSections {
  return {
    ...sections,
    main: { authserv_id: TEST_AUTHSERV_ID, ...(sections.main ?? {}) },
    http: { listen: '127.0.0.1:0', ...(sections.http ?? {}) },
  }
}

let selfSigned: { key: string; cert: string; dhparams: string } | undefined

/** One self-signed EC certificate per test process (openssl). */
export function selfSignedCert(): { key: string; cert: string; dhparams: string } {
  if (selfSigned) return selfSigned
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-cert-'))
  try {
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', path.join(tmp, 'key.pem'), '-out', path.join(tmp, 'cert.pem'), '-days', '2',
      '-subj', `/CN=${HARAKA_HOSTNAME}`, '-addext', `subjectAltName=DNS:${HARAKA_HOSTNAME}`,
    ], { encoding: 'utf8' }) // prettier-ignore
    if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`)
    // RFC 7919 group: instant, where Haraka would otherwise run `openssl dhparam 2048`.
    const dh = spawnSync(
      'openssl',
      ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'group:ffdhe2048'],
      {
        encoding: 'utf8',
      },
    )
    if (dh.status !== 0) throw new Error(`openssl genpkey failed: ${dh.stderr}`)
    selfSigned = {
      dhparams: dh.stdout,
      key: fs.readFileSync(path.join(tmp, 'key.pem'), 'utf8'),
      cert: fs.readFileSync(path.join(tmp, 'cert.pem'), 'utf8'),
    }
    return selfSigned
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

let template: string | undefined
/** Seconds the real `npm install` of this package took (reported by tests). */
export let npmInstallSeconds: number | undefined

function run(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000 })
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`)
}

/**
 * `haraka -i` + `npm install <repo>` once per test process, into a directory
 * that instances copy (node_modules/linksec is a relative symlink, valid for
 * any sibling in os.tmpdir()). --offline: a local directory needs no registry.
 */
function installTemplate(): string {
  if (template) return template
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-haraka-template-'))
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  run(process.execPath, [HARAKA_BIN, '-i', dir], dir)
  const t0 = process.hrtime.bigint()
  run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', REPO_ROOT], dir)
  npmInstallSeconds = Number(process.hrtime.bigint() - t0) / 1e9
  template = dir
  return dir
}

function writeFile(dir: string, rel: string, content: string): void {
  const p = path.join(dir, rel)
  fs.mkdirSync(path.dirname(p), { recursive: true })
  fs.writeFileSync(p, content)
}

function writeInstanceConfig(dir: string, port: number, opts: HarakaOptions): void {
  const cfg = path.join(dir, 'config')
  const plugins = ['test_no_dns', ...(opts.plugins ?? ['tls', 'linksec', 'test_sink'])]
  const tls =
    opts.tlsKeyPem && opts.tlsCertPem ? { key: opts.tlsKeyPem, cert: opts.tlsCertPem } : selfSignedCert()
  const files: Record<string, string> = {
    plugins: plugins.join('\n') + '\n',
    me: HARAKA_HOSTNAME + '\n',
    'smtp.ini': `[main]\nlisten=127.0.0.1:${port}\nnodes=\ninactivity_timeout=60\n`,
    'log.ini': `[main]\nlevel=${opts.logLevel ?? 'info'}\ntimestamps=true\nformat=default\n`,
    'tls.ini': '[main]\nkey=tls_key.pem\ncert=tls_cert.pem\ndhparam=dhparams.pem\n',
    'dhparams.pem': selfSignedCert().dhparams,
    'tls_key.pem': tls.key,
    'tls_cert.pem': tls.cert,
    'linksec.ini': opts.linksecIniText ?? toIni(withAuthservId(opts.linksec)),
    'test_mx.ini': toIni({ domains: opts.testMx ?? {} }),
    ...(opts.bounceTemplate === 'haraka'
      ? { 'outbound.bounce_message': fs.readFileSync(BOUNCE_TEMPLATE, 'utf8') }
      : {}),
    ...(opts.config ?? {}),
  }
  const template = path.join(cfg, 'outbound.bounce_message')
  const ownTemplate = opts.config?.['outbound.bounce_message'] !== undefined
  if ((opts.bounceTemplate ?? 'none') === 'none' && !ownTemplate && fs.existsSync(template))
    throw new Error(`${template} exists: this instance is not a stock \`haraka -i\` directory`)
  if (opts.noCertificate)
    for (const f of ['tls.ini', 'dhparams.pem', 'tls_key.pem', 'tls_cert.pem']) delete files[f]
  for (const [rel, content] of Object.entries(files)) writeFile(cfg, rel, content)
  const local = { ...BUILTIN_PLUGINS, ...(opts.localPlugins ?? {}) }
  for (const [name, src] of Object.entries(local)) writeFile(path.join(dir, 'plugins'), `${name}.js`, src)
}

function readQueued(dir: string): QueuedMessage[] {
  const sink = path.join(dir, 'sink')
  if (!fs.existsSync(sink)) return []
  return fs
    .readdirSync(sink)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const uuid = f.slice(0, -'.json'.length)
      const meta = JSON.parse(fs.readFileSync(path.join(sink, f), 'utf8'))
      return {
        uuid,
        raw: fs.readFileSync(path.join(sink, `${uuid}.eml`), 'utf8'),
        mailFrom: meta.mail_from,
        rcptTo: meta.rcpt_to,
        notes: meta.notes ?? {},
      }
    })
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = probe()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

/** Creates, configures and starts a Haraka; throws (after cleaning up) if it does not listen. */
export async function startHaraka(opts: HarakaOptions = {}): Promise<HarakaInstance> {
  const tpl = installTemplate()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-haraka-'))
  fs.cpSync(tpl, dir, { recursive: true, verbatimSymlinks: true })
  if (fs.realpathSync(path.join(dir, 'node_modules', 'linksec')) !== fs.realpathSync(REPO_ROOT))
    throw new Error(`${dir}/node_modules/linksec does not lead to ${REPO_ROOT}`)
  const port = await freePort()
  writeInstanceConfig(dir, port, opts)
  let output = ''
  const child = spawn(process.execPath, [HARAKA_BIN, '-c', dir], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout.on('data', (b: Buffer) => (output += b.toString()))
  child.stderr.on('data', (b: Buffer) => (output += b.toString()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      if (!(await waitForExit(child, 10_000))) child.kill('SIGKILL')
      await waitForExit(child, 5_000)
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    await Promise.race([
      waitForPort(port, '127.0.0.1', 20_000),
      waitForExit(child, 20_000).then((exited) => {
        if (exited) throw new Error('Haraka exited during start-up')
      }),
    ])
  } catch (e) {
    await stop()
    throw new Error(`${(e as Error).message}\n--- Haraka output ---\n${output.slice(-4000)}`)
  }
  return {
    dir,
    host: '127.0.0.1',
    port,
    pid: child.pid!,
    log: () => output,
    queued: () => readQueued(dir),
    waitForQueued: (n, ms = 10_000) =>
      until(`${n} queued message(s)`, ms, () => {
        const q = readQueued(dir)
        return q.length >= n ? q : undefined
      }),
    writeLinksecIni: (s) =>
      writeFile(
        path.join(dir, 'config'),
        'linksec.ini',
        typeof s === 'string' ? s : toIni(withAuthservId(s)),
      ),
    waitForLog: (re, ms = 10_000) =>
      until(`log ${re}`, ms, () => (re.test(output) ? true : undefined)).then(() => {}),
    stop,
  }
}

/** Starts Haraka expecting start-up to FAIL (e.g. a bad linksec.ini); returns its output. */
export async function startHarakaExpectingFailure(
  opts: HarakaOptions,
): Promise<{ started: boolean; output: string }> {
  try {
    const inst = await startHaraka(opts)
    const output = inst.log()
    await inst.stop()
    return { started: true, output }
  } catch (e) {
    return { started: false, output: (e as Error).message }
  }
}
