/**
 * The Web Key Service's real client for the WKS tests: a throwaway
 * GNUPGHOME per user with a key made by gpg itself (ultimately trusted, as
 * gpg-wks-client demands of the key that decrypts a confirmation request),
 * and gpg-wks-client 2.2 (Debian's /usr/lib/gnupg/gpg-wks-client). Either
 * with --fake-submission-addr (client(): it encrypts to the submission key
 * from that keyring and asks dirmngr nothing), or finding the policy and the
 * keys over WKD as on the Internet (runWithTestResolver: dirmngr sees only a
 * test DNS server and the test CA; startWkdWorld puts that DNS server on
 * port 53 and an HTTPS WKD host on port 443 in front of linksec's HTTP
 * listener, for wks-postfix and wks-haraka alike). No lookup leaves the
 * machine.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as https from 'node:https'
import * as path from 'node:path'
import { startDnsServer, type TestDnsServer } from './dns-server'
import { loopbackBlock } from './postfix-hosts'
import { wkdHash } from '../../core/keys'
import { testCa } from './test-ca'

export const WKS_CLIENT = '/usr/lib/gnupg/gpg-wks-client'
export const LINKSEC_BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')

export interface Run {
  status: number | null
  out: Buffer
  err: string
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, input?: string | Buffer): Run {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, input, timeout: 60_000 })
  return { status: r.status, out: r.stdout, err: r.stderr.toString() }
}

/** `linksec ARGS --config DIR`, asserted to succeed. */
export function linksec(configDir: string, ...args: string[]): Run {
  const r = run(process.execPath, [LINKSEC_BIN, ...args, '--config', configDir])
  assert.equal(r.status, 0, `linksec ${args.join(' ')}: ${r.err}`)
  return r
}

export interface WksUser {
  address: string
  home: string
  fingerprint: string
  /** gpg-wks-client with --fake-submission-addr SUBMISSION_ADDRESS. */
  client(args: string[], input?: string | Buffer): Run
  close(): void
}

/**
 * A GnuPG home under `scratch` with a fresh key for `address`; with
 * `submissionKeyFile`, the submission key imported (for client(), which
 * then needs no WKD). Without it, the client must find it over WKD.
 */
export function wksUser(
  scratch: string,
  address: string,
  submissionKeyFile: string | undefined,
  submissionAddress: string,
): WksUser {
  const home = path.join(scratch, `gnupg-${address}`)
  fs.mkdirSync(home, { mode: 0o700 })
  const env = { GNUPGHOME: home }
  const gen = run(
    'gpg',
    ['--batch', '--passphrase', '', '--quick-gen-key', address, 'default', 'default', 'never'],
    env,
  )
  assert.equal(gen.status, 0, gen.err)
  const list = run('gpg', ['--with-colons', '--list-keys', address], env).out.toString()
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(list)![1]!
  if (submissionKeyFile) {
    const imp = run('gpg', ['--batch', '--import', submissionKeyFile], env)
    assert.equal(imp.status, 0, imp.err)
  }
  return {
    address,
    home,
    fingerprint,
    client: (args, input) =>
      run(WKS_CLIENT, ['--fake-submission-addr', submissionAddress, ...args], env, input),
    close: () => void spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, ...env } }),
  }
}

/**
 * Runs CMD ARGS in a private mount namespace where /etc/resolv.conf names
 * only `nameserver` (a test DNS server on port 53 of a loopback address) and
 * the system CA bundle is `caBundle` (the system's plus the test CA): what
 * gpg's dirmngr reads for WKD (DNS, then HTTPS on port 443). Nothing it
 * resolves can reach the system resolver (real-peers.md §8). Asynchronous:
 * the DNS and HTTPS servers it talks to run in this process.
 */
export async function runWithTestResolver(
  scratch: string,
  nameserver: string,
  testCaFile: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string | Buffer,
): Promise<Run> {
  const resolv = path.join(scratch, 'resolv.conf')
  fs.writeFileSync(resolv, `nameserver ${nameserver}\noptions timeout:2 attempts:1\n`)
  const bundle = path.join(scratch, 'ca-certificates.crt')
  const system = '/etc/ssl/certs/ca-certificates.crt'
  fs.writeFileSync(
    bundle,
    (fs.existsSync(system) ? fs.readFileSync(system, 'utf8') : '') + fs.readFileSync(testCaFile, 'utf8'),
  )
  const script =
    'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/ssl/certs/ca-certificates.crt && shift 2 && exec "$@"'
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      script,
      'linksec-wkd',
      resolv,
      bundle,
      cmd,
      ...args,
    ],
    { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] },
  )
  child.stdin.end(input ?? '')
  const out: Buffer[] = []
  let err = ''
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => (err += b.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  clearTimeout(timer)
  return { status, out: Buffer.concat(out), err }
}

/** GET from linksec's HTTP listener on loopback with this Host. */
export function get(port: number, p: string, host: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, headers: { host } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }))
      })
      .on('error', reject)
  })
}

/** DNS on port 53 and WKD (HTTPS, port 443, proxied to linksec with its Host) on loopback addresses of this test's own. */
export interface WkdWorld {
  dns: TestDnsServer
  seen: string[]
  run(
    cmd: string,
    args: string[],
    home: string,
    input?: string | Buffer,
  ): ReturnType<typeof runWithTestResolver>
  close(): Promise<void>
}

export async function startWkdWorld(scratch: string, domain: string, httpPort: number): Promise<WkdWorld> {
  const at = loopbackBlock()
  const [dnsHost, webHost] = [at(1), at(2)]
  const dns = await startDnsServer(
    { [`openpgpkey.${domain}`]: { A: [webHost] }, [domain]: { A: [webHost] } },
    { host: dnsHost, port: 53 },
  )
  const leaf = await testCa().leaf([`openpgpkey.${domain}`, domain])
  const seen: string[] = []
  const web = https.createServer({ key: leaf.key, cert: leaf.cert }, (req, res) => {
    seen.push(`${req.headers.host} ${req.url}`)
    // The operator's web server in front of linksec (docs/operators.md): proxied with its Host.
    const up = http.request(
      {
        host: '127.0.0.1',
        port: httpPort,
        path: req.url,
        method: req.method,
        headers: { host: req.headers.host },
      },
      (r) => {
        res.writeHead(r.statusCode!, r.headers)
        r.pipe(res)
      },
    )
    up.on('error', () => res.destroy())
    up.end()
  })
  await new Promise<void>((r) => web.listen(443, webHost, r))
  const dir = path.join(scratch, 'wkd-world')
  fs.mkdirSync(dir)
  return {
    dns,
    seen,
    run: (cmd, args, home, input) =>
      runWithTestResolver(dir, dnsHost, testCa().caFile, cmd, args, { GNUPGHOME: home }, input),
    async close() {
      await new Promise<void>((r) => web.close(() => r()))
      await dns.close()
    },
  }
}

/**
 * `gpg --locate-keys --auto-key-locate clear,wkd` in a fresh GNUPGHOME under
 * `scratch`, through the world's test DNS and HTTPS WKD: it must find the key
 * with `fingerprint` for `local@domain`, asked for at the advanced-method URL.
 */
export async function assertLocatedOverWkd(
  world: WkdWorld,
  scratch: string,
  address: { local: string; domain: string; fingerprint: string },
): Promise<void> {
  const { local, domain, fingerprint } = address
  const home = path.join(scratch, 'locate')
  fs.mkdirSync(home, { mode: 0o700 })
  try {
    const r = await world.run(
      'gpg',
      ['--batch', '--with-colons', '--locate-keys', '--auto-key-locate', 'clear,wkd', `${local}@${domain}`],
      home,
    )
    assert.equal(r.status, 0, r.err)
    assert.match(r.out.toString(), new RegExp(`^fpr:+${fingerprint}:`, 'm'))
    assert.ok(world.dns.queries.some((q) => q.name === `openpgpkey.${domain}`))
    assert.ok(
      world.seen.some((l) =>
        l.startsWith(`openpgpkey.${domain} /.well-known/openpgpkey/${domain}/hu/${wkdHash(local)}`),
      ),
      world.seen.join('\n'),
    )
  } finally {
    run('gpgconf', ['--kill', 'all'], { GNUPGHOME: home })
  }
}
