/**
 * The Web Key Service's real client for the WKS tests: a throwaway
 * GNUPGHOME per user with a key made by gpg itself (ultimately trusted, as
 * gpg-wks-client demands of the key that decrypts a confirmation request),
 * and gpg-wks-client 2.2 (Debian's /usr/lib/gnupg/gpg-wks-client). Either
 * with --fake-submission-addr (client(): it encrypts to the submission key
 * from that keyring and asks dirmngr nothing), or finding the policy and the
 * keys over WKD as on the Internet (runWithTestResolver: dirmngr sees only a
 * test DNS server and the test CA). No lookup leaves the machine.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

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
