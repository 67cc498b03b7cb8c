/**
 * scripts/preflight.mjs (run by .ci/run before the tests): a missing tool or
 * capability fails with one line naming the Debian package to install, and a
 * working swaks passes its STARTTLS check against openssl s_server.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { needTools } from '../helpers/tools'

const ROOT = path.resolve(__dirname, '..', '..', '..')
const PREFLIGHT = path.join(ROOT, 'scripts', 'preflight.mjs')
const SBIN = ['/usr/sbin', '/usr/local/sbin', '/sbin']

function preflight(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [PREFLIGHT, ...args], { env, encoding: 'utf8', timeout: 120_000 })
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('preflight: '))
  return {
    status: r.status,
    lines,
    fails: lines.filter((l) => l.startsWith('preflight: FAIL')),
    out: r.stdout + r.stderr,
  }
}

/** A directory of symlinks to everything on PATH (and the sbin directories) except HIDE. */
function pathWithout(dir: string, hide: string): string {
  const bin = path.join(dir, 'bin')
  mkdirSync(bin)
  for (const d of [...(process.env.PATH ?? '').split(path.delimiter), ...SBIN]) {
    let names: string[]
    try {
      names = readdirSync(d)
    } catch {
      continue
    }
    for (const name of names) {
      if (name === hide) continue
      try {
        symlinkSync(path.join(d, name), path.join(bin, name))
      } catch {
        // The first directory on PATH wins, as it would for the shell.
      }
    }
  }
  return bin
}

test('with swaks hidden from PATH, the swaks check fails naming the package swaks', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'linksec-preflight-test-'))
  try {
    const bin = pathWithout(dir, 'swaks')
    const r = preflight(['--only', 'swaks-starttls,swaks-ipv6'], { ...process.env, PATH: bin })
    assert.equal(r.status, 1, r.out)
    assert.deepEqual(r.fails, [
      'preflight: FAIL swaks-starttls: swaks not found -> apt-get install swaks',
      'preflight: FAIL swaks-ipv6: swaks not found -> apt-get install swaks',
    ])
    assert.match(r.lines.at(-1)!, /^preflight: 0 passed, 2 failed, 0 skipped in /)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('with Net::SSLeay hidden from Perl, the STARTTLS check names libnet-ssleay-perl', (t) => {
  if (!needTools(t, { swaks: 'swaks', openssl: 'openssl' })) return
  const dir = mkdtempSync(path.join(tmpdir(), 'linksec-preflight-test-'))
  try {
    // A Net/SSLeay.pm first on @INC that fails to load, as if the package were absent.
    mkdirSync(path.join(dir, 'Net'))
    writeFileSync(path.join(dir, 'Net', 'SSLeay.pm'), 'die "hidden by preflight.test\\n";\n')
    const r = preflight(['--only', 'swaks-starttls'], { ...process.env, PERL5LIB: dir })
    assert.equal(r.status, 1, r.out)
    assert.equal(r.fails.length, 1, r.out)
    assert.match(r.fails[0]!, /^preflight: FAIL swaks-starttls: swaks has no TLS \(.*Net::SSLeay.*\)/)
    assert.match(r.fails[0]!, / -> apt-get install libnet-ssleay-perl libio-socket-ssl-perl$/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('swaks completes a STARTTLS session against openssl s_server', (t) => {
  if (!needTools(t, { swaks: 'swaks', openssl: 'openssl' })) return
  const r = preflight(['--only', 'swaks-starttls'], process.env)
  assert.equal(r.status, 0, r.out)
  assert.match(r.lines[0]!, /^preflight: ok {3}swaks-starttls: TLSv1\.[23]:\S+ \(s_server: \S+\)/)
})

test('an unknown check name is an error, not a silent pass', () => {
  const r = preflight(['--only', 'no-such-check'], process.env)
  assert.equal(r.status, 2, r.out)
  assert.match(r.out, /unknown check no-such-check/)
})

test('every package a preflight check names is installed by .ci/install-deps.sh', () => {
  const script = readFileSync(path.join(ROOT, '.ci', 'install-deps.sh'), 'utf8')
  // PKGS=( ... ) and any PKGS+=( ... ) appended later: one package per line, comments after it.
  const pkgs = new Set<string>()
  let inList = false
  for (const raw of script.split('\n')) {
    const line = raw.replace(/#.*/, '').trim()
    if (/^PKGS\+?=\($/.test(line)) inList = true
    else if (inList && line === ')') inList = false
    else if (inList) line.split(/\s+/).forEach((p) => p && pkgs.add(p))
  }
  const r = spawnSync(process.execPath, [PREFLIGHT, '--list'], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  const named = r.stdout
    .split('\n')
    .flatMap((l) => l.split(':')[1]?.trim().split(/\s+/).filter(Boolean) ?? [])
  assert.ok(named.includes('libnet-ssleay-perl') && named.includes('swaks'), r.stdout)
  assert.deepEqual(
    named.filter((p) => !pkgs.has(p)),
    [],
    'named by scripts/preflight.mjs but missing from PKGS',
  )
})
