#!/usr/bin/env node
// Proves that every system tool the tests and benchmarks use does what they
// need, not merely that it is installed: swaks completes a STARTTLS session
// against a throw-away `openssl s_server`, Postfix relays a message to
// smtp-sink, gpg/sq/rnp sign and verify, Redis answers PING, dnsmasq answers a
// query, and so on. Run by .ci/run after .ci/install-deps.sh and before the
// tests, so a missing capability fails CI in the first minute.
//
// Each failure is one line naming the Debian package to install:
//   preflight: FAIL swaks-starttls: swaks has no TLS (...) -> apt-get install libnet-ssleay-perl ...
// then "preflight: N passed, N failed, N skipped" and exit status 1.
//
// Everything runs on 127.0.0.1 (IP literals only: no lookup ever goes to the
// system resolver) in a temporary directory that is removed at the end.
// Checks that need root (a Postfix instance, namespaces) are skipped, with a
// line saying so, when not run as root.
//
// Usage: node scripts/preflight.mjs [--only NAME[,NAME...]] [--list]
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  statSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import * as net from 'node:net'
import * as dgram from 'node:dgram'
import { Resolver } from 'node:dns/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

const ROOT = new URL('..', import.meta.url).pathname
const PEERS = join(ROOT, '..', 'shared', 'peers')
const SBIN = ['/usr/sbin', '/usr/local/sbin', '/sbin']
// The same search path as test/helpers/tools.ts: PATH, then the sbin directories.
const PATH = [process.env.PATH ?? '', ...SBIN].filter(Boolean).join(delimiter)
const ENV = { ...process.env, PATH }
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0
const CHECK_TIMEOUT_MS = 45_000

class Failure extends Error {
  /** @param {string} message @param {string[]} pkgs */
  constructor(message, pkgs) {
    super(message)
    this.pkgs = pkgs
  }
}
class Skip extends Error {}

/** Absolute path of TOOL on PATH (plus the sbin directories), or undefined. */
function which(tool) {
  const executable = (p) => {
    try {
      accessSync(p, constants.X_OK)
      return statSync(p).isFile()
    } catch {
      return false
    }
  }
  if (tool.includes('/')) return executable(tool) ? tool : undefined
  return PATH.split(delimiter)
    .map((dir) => join(dir, tool))
    .find(executable)
}

/** Runs a command to completion; never throws for a non-zero exit. */
function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: { ...ENV, ...opts.env },
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve({ status: -1, stdout, stderr: stderr + String(err) })
    })
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      resolve({ status: signal ? -1 : status, stdout, stderr, signal })
    })
    // A command that exits without reading its input must not crash us (EPIPE).
    child.stdin.on('error', () => undefined)
    child.stdin.end(opts.input ?? '')
  })
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** A UDP port on 127.0.0.1 that was free a moment ago (and its TCP twin, for dnsmasq). */
async function freeDnsPort() {
  for (let i = 0; i < 20; i++) {
    const port = await freePort()
    const ok = await new Promise((resolve) => {
      const s = dgram.createSocket('udp4')
      s.once('error', () => resolve(false))
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
    if (ok) return port
  }
  throw new Error('no free UDP port')
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function waitFor(what, fn, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

function lastLine(text) {
  return (
    String(text)
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .pop() ?? ''
  )
}

/** Per-check context: a private directory, background processes stopped at the end. */
/** Every check's context, so an unexpected crash still stops what the checks started. */
const CONTEXTS = new Set()

class Ctx {
  constructor(dir) {
    this.dir = dir
    this.cleanups = []
    CONTEXTS.add(this)
  }
  file(name, text) {
    const p = join(this.dir, name)
    writeFileSync(p, text)
    return p
  }
  /** Starts a long-running process; it is killed when the check ends. */
  background(cmd, args, opts = {}) {
    const child = spawn(cmd, args, { env: { ...ENV, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] })
    child.output = ''
    child.stdout.on('data', (d) => (child.output += d))
    child.stderr.on('data', (d) => (child.output += d))
    child.on('error', (err) => (child.output += String(err)))
    child.stdin.on('error', () => undefined)
    this.cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    return child
  }
  onCleanup(fn) {
    this.cleanups.push(fn)
  }
  async cleanup() {
    CONTEXTS.delete(this)
    const fns = this.cleanups.splice(0).reverse()
    for (const fn of fns)
      await Promise.resolve()
        .then(fn)
        .catch(() => undefined)
  }
}

function fail(message, ...pkgs) {
  throw new Failure(message, pkgs)
}

/** Fails unless `r` exited 0. */
function ok(r, what, ...pkgs) {
  if (r.status !== 0) fail(`${what} failed (exit ${r.status}): ${lastLine(r.stderr || r.stdout)}`, ...pkgs)
  return r
}

/** Reads the peers' start scripts' `export NAME='value'` lines. */
function exportsOf(stdout) {
  const out = {}
  for (const m of stdout.matchAll(/^export (\w+)='([^']*)'$/gm)) out[m[1]] = m[2]
  return out
}

async function selfSignedCert(ctx) {
  const key = join(ctx.dir, 'tls.key')
  const cert = join(ctx.dir, 'tls.crt')
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  args.push('-subj', '/CN=preflight.test', '-days', '1', '-keyout', key, '-out', cert)
  ok(await run('openssl', args), 'openssl req -x509', 'openssl')
  return { key, cert }
}

/**
 * An SMTP server on 127.0.0.1 that speaks plaintext up to STARTTLS, then
 * hands the connection to `openssl s_server`, which does the TLS; the SMTP
 * dialogue continues through s_server's stdin/stdout.
 */
async function startTlsServer(ctx, { key, cert }) {
  const sPort = await freePort()
  const sserver = ctx.background('openssl', [
    's_server',
    '-accept',
    `127.0.0.1:${sPort}`,
    '-cert',
    cert,
    '-key',
    key,
    '-naccept',
    '1',
  ])
  await waitFor('openssl s_server', () => /ACCEPT/.test(sserver.output) || sserver.exitCode !== null)
  if (sserver.exitCode !== null) fail(`openssl s_server: ${lastLine(sserver.output)}`, 'openssl')
  const session = { cipher: '' }
  let buf = ''
  let inData = false
  sserver.stdout.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '')
      buf = buf.slice(i + 1)
      const cipher = /^CIPHER is (\S+)/.exec(line)
      if (cipher) session.cipher = cipher[1]
      const reply = (text) => sserver.stdin.write(`${text}\r\n`)
      if (inData) {
        if (line === '.') {
          inData = false
          reply('250 2.0.0 queued')
        }
      } else if (/^EHLO /i.test(line)) reply('250 preflight.test')
      else if (/^(MAIL|RCPT) /i.test(line)) reply('250 2.1.0 ok')
      else if (/^DATA$/i.test(line)) {
        inData = true
        reply('354 go ahead')
      } else if (/^QUIT$/i.test(line)) reply('221 2.0.0 bye')
    }
  })
  const front = net.createServer((sock) => {
    let pre = ''
    sock.on('error', () => sock.destroy())
    sock.write('220 preflight.test ESMTP\r\n')
    const onData = (d) => {
      pre += d
      let i
      while ((i = pre.indexOf('\n')) >= 0) {
        const line = pre.slice(0, i).replace(/\r$/, '')
        pre = pre.slice(i + 1)
        if (/^EHLO /i.test(line)) sock.write('250-preflight.test\r\n250 STARTTLS\r\n')
        else if (/^STARTTLS$/i.test(line)) {
          sock.off('data', onData)
          sock.pause()
          sock.write('220 2.0.0 ready to start TLS\r\n')
          const upstream = net.connect(sPort, '127.0.0.1', () => {
            sock.pipe(upstream).pipe(sock)
            sock.resume()
          })
          upstream.on('error', () => sock.destroy())
          sock.on('close', () => upstream.destroy())
          return
        } else sock.write('503 5.5.1 STARTTLS first\r\n')
      }
    }
    sock.on('data', onData)
  })
  await new Promise((resolve) => front.listen(0, '127.0.0.1', resolve))
  ctx.onCleanup(() => new Promise((resolve) => front.close(resolve)))
  return { port: front.address().port, session }
}

/** RFC 6238-free helper: z-base-32 (the WKD hash encoding, draft-koch-openpgp-webkey-service). */
function zbase32(bytes) {
  const alphabet = 'ybndrfg8ejkmcpqxot1uwisza345h769'
  let bits = 0
  let value = 0
  let out = ''
  for (const b of bytes) {
    value = (value << 8) | b
    bits += 8
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31]
  return out
}

/**
 * The checks. `tools` maps each command the check runs to the Debian package
 * that provides it (a missing command fails naming that package); `pkgs`
 * lists other packages a failure may name (modules, not commands); `root`
 * marks checks that need root. `run` throws `fail(message, package...)` when
 * a tool is present but cannot do what the tests need, and may return a short
 * note (a version, a cipher) for the "ok" line.
 */
const CHECKS = [
  {
    name: 'node',
    tools: {},
    run: async () => {
      const major = Number(process.versions.node.split('.')[0])
      if (major < 20) fail(`Node ${process.version} is older than package.json engines (>=20)`, 'nodejs')
      return process.version
    },
  },
  {
    name: 'peers',
    tools: {},
    run: async () => {
      const scripts = ['postfix-up.sh', 'postfix-down.sh', 'peer-down.sh', 'redis-up.sh', 'test-milter.py']
      const missing = scripts.filter((s) => !existsSync(join(PEERS, s)))
      if (missing.length) {
        throw new Failure(`${PEERS} lacks ${missing.join(', ')} (the tests' peer start scripts)`, [])
      }
      return PEERS
    },
  },
  {
    name: 'swaks-starttls',
    tools: { swaks: 'swaks', openssl: 'openssl' },
    pkgs: ['libnet-ssleay-perl', 'libio-socket-ssl-perl'],
    run: async (ctx) => {
      const tlsPkgs = ['libnet-ssleay-perl', 'libio-socket-ssl-perl']
      const support = await run('swaks', ['--support'])
      const tls =
        /^.*\bTLS\b.*$/m.exec(support.stdout + support.stderr)?.[0] ?? 'swaks --support: no TLS line'
      if (!/TLS supported/.test(tls)) fail(`swaks has no TLS (${tls.trim()})`, ...tlsPkgs)
      const srv = await startTlsServer(ctx, await selfSignedCert(ctx))
      const r = await run('swaks', [
        ...['--server', `127.0.0.1:${srv.port}`, '--helo', 'client.preflight.test'],
        ...['--from', 'a@preflight.test', '--to', 'b@preflight.test', '--tls', '--timeout', '15'],
      ])
      const out = r.stdout + r.stderr
      const started = /TLS started with cipher (\S+)/.exec(out)
      if (r.status !== 0 || !started) {
        fail(`swaks --tls session failed (exit ${r.status}): ${lastLine(out)}`, 'swaks', ...tlsPkgs)
      }
      if (!/^<~ +250 2\.0\.0 queued/m.test(out)) fail('swaks: no 250 after DATA inside TLS', 'swaks')
      return `${started[1]} (s_server: ${srv.session.cipher || '?'})`
    },
  },
  {
    name: 'swaks-ipv6',
    tools: { swaks: 'swaks' },
    pkgs: ['libio-socket-inet6-perl'],
    run: async () => {
      const r = await run('swaks', ['--support'])
      const line = /^.*\bIPv6\b.*$/m.exec(r.stdout + r.stderr)?.[0] ?? 'swaks --support: no IPv6 line'
      if (!/IPv6 supported/.test(line)) fail(`swaks has no IPv6 (${line.trim()})`, 'libio-socket-inet6-perl')
    },
  },
  {
    name: 'postfix',
    tools: {
      ...{ postfix: 'postfix', postconf: 'postfix', postqueue: 'postfix' },
      ...{ 'smtp-sink': 'postfix', 'smtp-source': 'postfix', ss: 'iproute2', openssl: 'openssl' },
    },
    root: true,
    run: async (ctx) => {
      const version = ok(await run('postconf', ['-d', 'mail_version']), 'postconf -d', 'postfix')
      const [port, sinkPort] = [await freePort(), await freePort()]
      const pfDir = join(ctx.dir, 'pf')
      const up = await run('bash', [join(PEERS, 'postfix-up.sh')], {
        env: { PF_DIR: pfDir, PORT: String(port), SINK_PORT: String(sinkPort), SINK_DUMP: '1', TLS: '1' },
      })
      // Registered before the status is checked: a failed start may leave smtp-sink running.
      ctx.onCleanup(async () => {
        await run('bash', [join(PEERS, 'postfix-down.sh'), pfDir])
        const sinkPid = Number(safeRead(join(pfDir, 'sink.pid')).trim())
        if (sinkPid > 0) process.kill(sinkPid, 'SIGTERM')
      })
      ok(up, 'shared/peers/postfix-up.sh', 'postfix')
      const conf = exportsOf(up.stdout).PF_CONF ?? join(pfDir, 'etc')
      const src = await run('smtp-source', [
        ...['-m', '1', '-f', 'a@preflight.test', '-t', 'b@preflight.test', '-S', 'preflight'],
        `127.0.0.1:${port}`,
      ])
      ok(src, 'smtp-source into Postfix', 'postfix')
      const sink = join(pfDir, 'sink')
      await waitFor('the message at smtp-sink', () => {
        const files = existsSync(sink) ? readdirSync(sink, { recursive: true }) : []
        return files.some((f) => /Subject: preflight/.test(safeRead(join(sink, String(f)))))
      }).catch(() => fail('Postfix did not relay a message to smtp-sink', 'postfix'))
      ok(await run('postqueue', ['-c', conf, '-p']), 'postqueue -p', 'postfix')
      return version.stdout.trim().replace('mail_version = ', 'Postfix ')
    },
  },
  {
    name: 'postmap',
    tools: { postmap: 'postfix' },
    run: async (ctx) => {
      const etc = join(ctx.dir, 'etc')
      mkdirSync(etc)
      writeFileSync(join(etc, 'main.cf'), '')
      const map = ctx.file('map', 'preflight.test ok\n')
      ok(await run('postmap', ['-c', etc, `hash:${map}`]), 'postmap hash:', 'postfix')
      const q = ok(await run('postmap', ['-c', etc, '-q', 'preflight.test', `hash:${map}`]), 'postmap -q')
      if (q.stdout.trim() !== 'ok') fail(`postmap -q answered ${JSON.stringify(q.stdout.trim())}`, 'postfix')
    },
  },
  {
    name: 'python3-milter',
    tools: { '/usr/bin/python3': 'python3' },
    pkgs: ['python3-milter'],
    run: async () => {
      const r = await run('/usr/bin/python3', ['-c', 'import Milter; print(Milter.__version__)'])
      if (r.status !== 0)
        fail(`/usr/bin/python3 cannot import Milter: ${lastLine(r.stderr)}`, 'python3-milter')
      return `pymilter ${r.stdout.trim()}`
    },
  },
  {
    name: 'miltertest',
    tools: { miltertest: 'miltertest', '/usr/bin/python3': 'python3' },
    run: async (ctx) => {
      // miltertest drives shared/peers/test-milter.py (pymilter) through a
      // whole transaction, as selftest.sh does.
      if ((await run('/usr/bin/python3', ['-c', 'import Milter'])).status !== 0) {
        const lua = ctx.file('echo.lua', 'mt.echo("preflight")\n')
        const r = ok(await run('miltertest', ['-s', lua]), 'miltertest -s', 'miltertest')
        if (!/preflight/.test(r.stdout)) fail('miltertest did not run its Lua script', 'miltertest')
        return 'Lua only (no pymilter to talk to; see python3-milter)'
      }
      const port = await freePort()
      const milter = ctx.background('/usr/bin/python3', [
        join(PEERS, 'test-milter.py'),
        ...['--listen', `inet:${port}@127.0.0.1`, '--header', 'X-Test-Milter:ok'],
        ...['--pidfile', join(ctx.dir, 'milter.pid')],
      ])
      const r = await run('miltertest', [
        '-s',
        join(PEERS, 'test-milter.lua'),
        '-D',
        `sock=inet:${port}@127.0.0.1`,
      ])
      if (r.status !== 0) {
        fail(
          `miltertest against pymilter failed: ${lastLine(r.stdout + r.stderr + milter.output)}`,
          'miltertest',
        )
      }
    },
  },
  {
    name: 'opendkim',
    tools: { opendkim: 'opendkim', 'opendkim-genkey': 'opendkim-tools' },
    run: async (ctx) => {
      const keys = join(ctx.dir, 'dkim')
      mkdirSync(keys)
      const gen = ['-b', '1024', '-D', keys, '-d', 'preflight.test', '-s', 's1']
      ok(await run('opendkim-genkey', gen), 'opendkim-genkey', 'opendkim-tools')
      if (!existsSync(join(keys, 's1.private'))) fail('opendkim-genkey wrote no key', 'opendkim-tools')
      const conf = ctx.file(
        'opendkim.conf',
        [
          'Mode v',
          'Socket inet:8891@127.0.0.1',
          'AuthservID preflight.test',
          `KeyFile ${join(keys, 's1.private')}`,
          'Domain preflight.test',
          'Selector s1',
          // The key is below /tmp, which is world-writable (as in shared/peers/opendkim-up.sh).
          'RequireSafeKeys false',
          '',
        ].join('\n'),
      )
      // -n: parse the configuration and load the key, then exit.
      ok(await run('opendkim', ['-n', '-x', conf]), 'opendkim -n (configuration check)', 'opendkim')
      const v = await run('opendkim', ['-V'])
      return (v.stdout.split('\n')[0] ?? '').replace(/^opendkim: /, '')
    },
  },
  {
    name: 'gpg',
    tools: { gpg: 'gnupg', gpgv: 'gpgv', gpgconf: 'gnupg' },
    run: async (ctx) => {
      const home = join(ctx.dir, 'gnupg')
      mkdirSync(home, { mode: 0o700 })
      const env = { GNUPGHOME: home }
      const gpg = (args, input) =>
        run('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
          env,
          input,
        })
      ctx.onCleanup(() => run('gpgconf', ['--kill', 'gpg-agent'], { env }))
      ok(
        await gpg(['--quick-gen-key', '<a@preflight.test>', 'ed25519', 'sign', 'never']),
        'gpg --quick-gen-key',
        'gnupg',
      )
      const data = ctx.file('data', 'signed by gpg\n')
      ok(await gpg(['--detach-sign', '-o', `${data}.sig`, data]), 'gpg --detach-sign', 'gnupg')
      ok(await gpg(['--export', '-o', join(ctx.dir, 'ring.gpg')]), 'gpg --export', 'gnupg')
      const verify = (file) => run('gpgv', ['--keyring', join(ctx.dir, 'ring.gpg'), `${data}.sig`, file])
      ok(await verify(data), 'gpgv of a good signature', 'gpgv')
      const bad = ctx.file('tampered', 'signed by gpg?\n')
      if ((await verify(bad)).status === 0) fail('gpgv accepted a tampered file', 'gpgv')
      return lastLine((await run('gpg', ['--version'])).stdout.split('\n')[0])
    },
  },
  {
    name: 'sq',
    tools: { sq: 'sq' },
    run: async (ctx) => {
      const key = join(ctx.dir, 'key.pgp')
      const cert = join(ctx.dir, 'cert.pgp')
      ok(
        await run('sq', ['key', 'generate', '--userid', '<a@preflight.test>', '--export', key]),
        'sq key generate',
        'sq',
      )
      ok(await run('sq', ['key', 'extract-cert', '-o', cert, key]), 'sq key extract-cert', 'sq')
      const data = ctx.file('data', 'signed by sq\n')
      const sig = `${data}.sig`
      ok(await run('sq', ['sign', '--detached', '--signer-key', key, '-o', sig, data]), 'sq sign', 'sq')
      ok(await run('sq', ['verify', '--detached', sig, '--signer-cert', cert, data]), 'sq verify', 'sq')
      const bad = ctx.file('tampered', 'signed by sq?\n')
      if ((await run('sq', ['verify', '--detached', sig, '--signer-cert', cert, bad])).status === 0) {
        fail('sq verify accepted a tampered file', 'sq')
      }
      return lastLine((await run('sq', ['--version'])).stdout)
    },
  },
  {
    name: 'sq-wot',
    tools: { 'sq-wot': 'sq-wot', sq: 'sq' },
    run: async (ctx) => {
      // A root's own user ID is authenticated from it; another address is not.
      const key = join(ctx.dir, 'ca.pgp')
      const cert = join(ctx.dir, 'ca-cert.pgp')
      ok(
        await run('sq', ['key', 'generate', '--userid', '<openpgp-ca@preflight.test>', '--export', key]),
        'sq key generate',
        'sq',
      )
      ok(await run('sq', ['key', 'extract-cert', '-o', cert, key]), 'sq key extract-cert', 'sq')
      const fpr = /Fingerprint: ([0-9A-F]{40})/.exec((await run('sq', ['inspect', cert])).stdout)?.[1]
      if (!fpr) fail('sq inspect printed no fingerprint', 'sq')
      const lookup = (email) =>
        run('sq-wot', ['--keyring', cert, '--trust-root', fpr, 'lookup', '--email', email])
      ok(await lookup('openpgp-ca@preflight.test'), 'sq-wot lookup of the trust root', 'sq-wot')
      if ((await lookup('other@preflight.test')).status === 0)
        fail('sq-wot authenticated an unknown address', 'sq-wot')
      return lastLine((await run('sq-wot', ['--version'])).stdout)
    },
  },
  {
    name: 'rnp',
    tools: { rnp: 'rnp', rnpkeys: 'rnp' },
    run: async (ctx) => {
      const home = join(ctx.dir, 'rnp')
      mkdirSync(home)
      const gen = ['--homedir', home, '--generate-key', '--userid', 'a@preflight.test', '--password=']
      ok(await run('rnpkeys', gen), 'rnpkeys --generate-key', 'rnp')
      const data = ctx.file('data', 'signed by rnp\n')
      const sig = `${data}.sig`
      const sign = ['--homedir', home, '--sign', '--detach', '--password=', '-u', 'a@preflight.test']
      ok(await run('rnp', [...sign, '--output', sig, data]), 'rnp --sign --detach', 'rnp')
      const verify = (file) => run('rnp', ['--homedir', home, '--verify', sig, '--source', file])
      ok(await verify(data), 'rnp --verify of a good signature', 'rnp')
      const bad = ctx.file('tampered', 'signed by rnp?\n')
      if ((await verify(bad)).status === 0) fail('rnp accepted a tampered file', 'rnp')
      return (await run('rnp', ['--version'])).stdout.split('\n')[0]
    },
  },
  {
    name: 'gpg-wks-client',
    tools: { '/usr/lib/gnupg/gpg-wks-client': 'gpg-wks-client' },
    run: async () => {
      const addr = 'Joe.Doe@Example.ORG'
      const r = ok(
        await run('/usr/lib/gnupg/gpg-wks-client', ['--print-wkd-hash', addr]),
        'gpg-wks-client --print-wkd-hash',
        'gpg-wks-client',
      )
      const want = zbase32(createHash('sha1').update('joe.doe').digest())
      if (r.stdout.split(/\s/)[0] !== want) {
        fail(`gpg-wks-client hashed ${addr} to ${r.stdout.trim()}, want ${want}`, 'gpg-wks-client')
      }
    },
  },
  {
    name: 'mutt',
    tools: { mutt: 'mutt' },
    run: async () => {
      const v = ok(await run('mutt', ['-v']), 'mutt -v', 'mutt')
      if (!/\+CRYPT_BACKEND_GPGME/.test(v.stdout)) fail('mutt is built without the GPGME backend', 'mutt')
      const q = await run('mutt', ['-n', '-F', '/dev/null', '-Q', 'crypt_use_gpgme'], {
        env: { HOME: tmpdir() },
      })
      if (!/crypt_use_gpgme/.test(q.stdout + q.stderr))
        fail(`mutt -Q: ${lastLine(q.stdout + q.stderr)}`, 'mutt')
      return v.stdout.split('\n')[0]
    },
  },
  {
    // Postfix's smtpd authenticates the signing test's users against a sasldb
    // (test/integration/sign-postfix.test.ts): saslpasswd2 must write one and
    // Cyrus must offer PLAIN, which lives in the only-recommended modules.
    name: 'sasl',
    tools: { saslpasswd2: 'sasl2-bin', sasldblistusers2: 'sasl2-bin', saslpluginviewer: 'sasl2-bin' },
    run: async (ctx) => {
      const db = join(ctx.dir, 'sasldb2')
      const add = ['-p', '-c', '-f', db, '-u', 'preflight.test', 'alice']
      ok(await run('saslpasswd2', add, { input: 'secret' }), 'saslpasswd2 -c', 'sasl2-bin')
      const list = ok(await run('sasldblistusers2', ['-f', db]), 'sasldblistusers2', 'sasl2-bin')
      if (!/alice@preflight\.test/.test(list.stdout)) fail('saslpasswd2 wrote no user', 'sasl2-bin')
      const mechs = ok(await run('saslpluginviewer', ['-s']), 'saslpluginviewer -s', 'sasl2-bin')
      if (!/\bPLAIN\b/.test(mechs.stdout)) fail('Cyrus SASL offers no PLAIN mechanism', 'libsasl2-modules')
    },
  },
  {
    name: 'redis',
    tools: { 'redis-server': 'redis-server', 'redis-cli': 'redis-tools' },
    run: async (ctx) => {
      const port = await freePort()
      const server = ctx.background('redis-server', [
        ...['--bind', '127.0.0.1', '--port', String(port), '--dir', ctx.dir],
        ...['--save', '', '--appendonly', 'no'],
      ])
      const cli = (...args) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args])
      await waitFor(
        'redis PONG',
        async () => (await cli('ping')).stdout.trim() === 'PONG' || server.exitCode !== null,
      )
      if (server.exitCode !== null) fail(`redis-server exited: ${lastLine(server.output)}`, 'redis-server')
      await cli('set', 'preflight', 'ok')
      const got = (await cli('get', 'preflight')).stdout.trim()
      if (got !== 'ok') fail(`redis GET answered ${JSON.stringify(got)}`, 'redis-server')
      await cli('shutdown', 'nosave')
      return lastLine((await run('redis-server', ['--version'])).stdout)
        .split(' ')
        .slice(0, 3)
        .join(' ')
    },
  },
  {
    name: 'promtool',
    tools: { promtool: 'prometheus' },
    run: async () => {
      const good = '# HELP preflight_total Checks.\n# TYPE preflight_total counter\npreflight_total 1\n'
      ok(await run('promtool', ['check', 'metrics'], { input: good }), 'promtool check metrics', 'prometheus')
      const bad = '# TYPE preflight counter\npreflight 1\n'
      if ((await run('promtool', ['check', 'metrics'], { input: bad })).status === 0) {
        fail('promtool check metrics accepted a counter without _total', 'prometheus')
      }
    },
  },
  {
    name: 'prometheus',
    tools: { prometheus: 'prometheus', curl: 'curl' },
    run: async (ctx) => {
      const port = await freePort()
      const conf = ctx.file(
        'prometheus.yml',
        `scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`,
      )
      const prom = ctx.background('prometheus', [
        `--config.file=${conf}`,
        `--storage.tsdb.path=${join(ctx.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ])
      await waitFor(
        'prometheus /-/ready',
        async () =>
          prom.exitCode !== null ||
          (await run('curl', ['-fsS', `http://127.0.0.1:${port}/-/ready`], { timeoutMs: 5000 })).status === 0,
        30_000,
      )
      if (prom.exitCode !== null) fail(`prometheus exited: ${lastLine(prom.output)}`, 'prometheus')
    },
  },
  {
    name: 'dnsmasq',
    tools: { dnsmasq: 'dnsmasq-base' },
    run: async (ctx) => {
      // Answers from its own --address only (no upstream, no /etc/hosts); the
      // query goes to it by IP literal, never to the system resolver.
      const port = await freeDnsPort()
      const dns = ctx.background('dnsmasq', [
        ...['--conf-file=/dev/null', '--keep-in-foreground', '--no-resolv', '--no-hosts'],
        ...['--listen-address=127.0.0.1', '--bind-interfaces', `--port=${port}`],
        ...['--address=/preflight.test/192.0.2.7', `--pid-file=${join(ctx.dir, 'dnsmasq.pid')}`],
        ...(IS_ROOT ? ['--user=nobody', '--group=nogroup'] : []),
      ])
      const resolver = new Resolver({ timeout: 500, tries: 1 })
      resolver.setServers([`127.0.0.1:${port}`])
      const got = await waitFor(
        'a dnsmasq answer',
        async () =>
          dns.exitCode !== null || (await resolver.resolve4('mx.preflight.test').catch(() => false)),
      )
      if (dns.exitCode !== null) fail(`dnsmasq exited: ${lastLine(dns.output)}`, 'dnsmasq-base')
      if (got.join() !== '192.0.2.7') fail(`dnsmasq answered ${got.join()}`, 'dnsmasq-base')
    },
  },
  {
    name: 'mta-sts-lab',
    tools: {
      'mta-sts-daemon': 'postfix-mta-sts-resolver',
      dnsmasq: 'dnsmasq-base',
      unshare: 'util-linux',
      postmap: 'postfix',
      openssl: 'openssl',
    },
    root: true,
    run: async () => {
      // shared/peers/mta-sts-lab.sh: a network namespace with only lo,
      // dnsmasq, an HTTPS policy server and mta-sts-daemon; postmap asks it.
      const r = await run('bash', [join(PEERS, 'mta-sts-lab.sh')], {
        env: { STS_PORT: '8461' },
        timeoutMs: 40_000,
      })
      if (!/^secure match=/m.test(r.stdout)) {
        fail(
          `mta-sts-lab.sh: no "secure match=" answer: ${lastLine(r.stderr || r.stdout)}`,
          'postfix-mta-sts-resolver',
        )
      }
    },
  },
  {
    name: 'netns',
    tools: { unshare: 'util-linux', ip: 'iproute2', ss: 'iproute2' },
    root: true,
    run: async (ctx) => {
      // What test/helpers/postfix-hosts.ts does: a private mount namespace
      // with a file bind-mounted over /etc/hosts, and a network namespace.
      const hosts = ctx.file('hosts', '192.0.2.1 preflight.test\n')
      const script = `mount --bind ${hosts} /etc/hosts && grep -q preflight.test /etc/hosts && ip -o link show`
      const r = await run('unshare', ['--net', '--mount', '--propagation', 'private', 'sh', '-c', script])
      if (r.status !== 0) {
        fail(`unshare --net --mount: ${lastLine(r.stderr)} (needs CAP_SYS_ADMIN)`, 'util-linux', 'iproute2')
      }
      const links = r.stdout.trim().split('\n')
      if (links.length !== 1 || !/\blo\b/.test(links[0]))
        fail(`the new netns has ${links.length} links`, 'iproute2')
      ok(await run('ss', ['-Hltn']), 'ss -Hltn', 'iproute2')
    },
  },
  {
    name: 'systemd-analyze',
    tools: { 'systemd-analyze': 'systemd' },
    run: async (ctx) => {
      const unit = ctx.file('preflight.service', '[Service]\nExecStart=/bin/true\n')
      const r = await run('systemd-analyze', ['verify', unit])
      if (r.status !== 0) fail(`systemd-analyze verify: ${lastLine(r.stderr)}`, 'systemd')
    },
  },
]

function safeRead(file) {
  try {
    return readFileSync(file, 'latin1')
  } catch {
    return ''
  }
}

async function runCheck(check, base) {
  const started = Date.now()
  const secs = () => `${((Date.now() - started) / 1000).toFixed(1)} s`
  const missing = Object.entries(check.tools).filter(([tool]) => !which(tool))
  if (missing.length) {
    const pkgs = [...new Set(missing.map(([, p]) => p))]
    const names = missing.map(([t]) => t).join(', ')
    return {
      status: 'fail',
      line: `FAIL ${check.name}: ${names} not found -> apt-get install ${pkgs.join(' ')}`,
    }
  }
  if (check.root && !IS_ROOT)
    return { status: 'skip', line: `skip ${check.name}: needs root (the tests skip it too)` }
  const ctx = new Ctx(mkdtempSync(join(base, `${check.name}-`)))
  // Postfix' and opendkim's users must reach files below it.
  chmodSync(ctx.dir, 0o755)
  let timer
  try {
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS / 1000} s`)),
        CHECK_TIMEOUT_MS,
      )
    })
    const note = await Promise.race([check.run(ctx), timeout])
    return { status: 'ok', line: `ok   ${check.name}${note ? `: ${note}` : ''} (${secs()})` }
  } catch (err) {
    const pkgs = err instanceof Failure ? err.pkgs : Object.values(check.tools)
    const fix = pkgs.length ? ` -> apt-get install ${[...new Set(pkgs)].join(' ')}` : ''
    return { status: 'fail', line: `FAIL ${check.name}: ${err.message.replace(/\s+/g, ' ')}${fix}` }
  } finally {
    clearTimeout(timer)
    await ctx.cleanup()
  }
}

async function main() {
  const args = process.argv.slice(2)
  if (args.includes('--list')) {
    for (const c of CHECKS)
      console.log(`${c.name}: ${[...new Set([...Object.values(c.tools), ...(c.pkgs ?? [])])].join(' ')}`)
    return 0
  }
  const i = args.indexOf('--only')
  const only = i >= 0 ? (args[i + 1] ?? '').split(',').filter(Boolean) : []
  const unknown = only.filter((n) => !CHECKS.some((c) => c.name === n))
  if (unknown.length) {
    console.error(`preflight: unknown check ${unknown.join(', ')} (see --list)`)
    return 2
  }
  const checks = only.length ? CHECKS.filter((c) => only.includes(c.name)) : CHECKS
  const base = mkdtempSync(join(tmpdir(), 'linksec-preflight-'))
  chmodSync(base, 0o755)
  const started = Date.now()
  const results = []
  try {
    // A few at a time: each check is small, but gpg/rnp key generation and
    // Prometheus' start take CPU.
    const queue = [...checks]
    const worker = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const r = await runCheck(c, base)
        console.log(`preflight: ${r.line}`)
        results.push(r)
      }
    }
    await Promise.all(Array.from({ length: 4 }, worker))
  } finally {
    rmSync(base, { recursive: true, force: true })
  }
  const n = (s) => results.filter((r) => r.status === s).length
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  console.log(`preflight: ${n('ok')} passed, ${n('fail')} failed, ${n('skip')} skipped in ${secs} s`)
  return n('fail') > 0 ? 1 : 0
}

process.on('uncaughtException', async (err) => {
  console.log(`preflight: FAIL internal error: ${String(err?.stack ?? err).split('\n')[0]}`)
  await Promise.all([...CONTEXTS].map((c) => c.cleanup()))
  process.exit(1)
})
process.exitCode = await main()
