/**
 * `linksec check` and `linksec record` as operators run them: the built
 * command in a child process, --config pointing at a private world.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as path from 'node:path'
import { startWorld, type World } from '../helpers/world'

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')
let world: World
let dir: string

before(async () => {
  world = await startWorld({
    zone: {
      '_linksec.example.test': { TXT: ['v=LINKSEC1; level=4; ttl=3600; sig=required'] },
      '_mta-sts.example.test': { TXT: ['v=STSv1; id=7;'] },
      'broken.test': { fault: 'servfail' },
      '_linksec.ca.test': { TXT: [`v=LINKSEC1; level=1; ca=${'AB'.repeat(20)}`], secure: true },
      '_linksec.ca-unsigned.test': { TXT: [`v=LINKSEC1; level=1; ca=${'CD'.repeat(20)}`] },
    },
    hosts: ['mta-sts.example.test'],
    routes: {
      'mta-sts.example.test/.well-known/mta-sts.txt': {
        body: 'version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 600\n',
      },
    },
  })
  dir = world.configIni({ main: { mailboxes_tls_only: true, declaration_ttl: 7200 } })
})

after(() => world.close())

/** Runs the CLI without blocking this process (the world's servers live here). */
function linksec(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
  })
}

test('check prints the effective level and each source with its reason', async () => {
  const r = await linksec('check', 'example.test', '--config', dir)
  assert.equal(r.code, 0, r.err)
  assert.match(r.out, /^level\s+4$/m)
  assert.match(r.out, /^tls\s+secure \(mx \*\.example\.test\)\s+\[decided by mta_sts\]$/m)
  assert.match(r.out, /^signatures\s+required$/m)
  assert.match(r.out, /^postfix\s+OK secure match=\.example\.test servername=hostname$/m)
  assert.match(
    r.out,
    /^txt\s+found\s+4\s+encrypt\s+\S+\s+_linksec\.example\.test declares level 4, ttl=3600, sig=required$/m,
  )
  assert.match(r.out, /^mta_sts\s+found\s+3\s+secure\s+\S+\s+policy id 7, mode enforce, max_age 600/m)
  assert.match(r.out, /^dane\s+none\s+-\s+-\s+-\s+.*not DNSSEC-validated/m)
  assert.match(r.out, /^static\s+none\s+.*not in the static domains list/m)
  assert.match(r.out, /^learned\s+none/m)
})

test('check names the domain CA that counts, and one that does not (no DNSSEC)', async () => {
  const signed = await linksec('check', 'ca.test', '--config', dir)
  assert.equal(signed.code, 0, signed.err)
  assert.match(
    signed.out,
    new RegExp(`^domain CA: ${'AB'.repeat(20)} \\(from a DNSSEC-validated answer\\)`, 'm'),
  )
  const unsigned = await linksec('check', 'ca-unsigned.test', '--json', '--config', dir)
  assert.equal(unsigned.code, 0, unsigned.err)
  const j = JSON.parse(unsigned.out) as { domain_ca: { kind: string; counted: boolean; fingerprint: string } }
  assert.deepEqual(j.domain_ca, {
    kind: 'declared',
    fingerprint: 'CD'.repeat(20),
    counted: false,
    source: 'dns',
  })
  const none = await linksec('check', 'example.test', '--config', dir)
  assert.match(none.out, /^domain CA: none declared$/m)
})

test('check --json is for scripts', async () => {
  const r = await linksec('check', 'Example.Test.', '--json', '--config', dir)
  assert.equal(r.code, 0, r.err)
  const j = JSON.parse(r.out) as {
    domain: string
    level: number
    tlsMode: string
    postfix: string
    sources: { source: string; outcome: string }[]
  }
  assert.equal(j.domain, 'example.test')
  assert.equal(j.level, 4)
  assert.equal(j.tlsMode, 'secure')
  assert.equal(j.postfix, 'OK secure match=.example.test servername=hostname')
  assert.deepEqual(
    j.sources.map((s) => s.source),
    ['static', 'dane', 'mta_sts', 'txt', 'learned'],
  )
})

test('check: a failing lookup exits 75 and says so; bad input exits 65 or 2', async () => {
  const broken = await linksec('check', 'broken.test', '--config', dir)
  assert.equal(broken.code, 75)
  assert.match(broken.out, /^dane\s+error\s+.*SERVFAIL/m)
  assert.match(broken.out, /^warning\s+/m)
  assert.match(broken.out, /^postfix\s+TEMP /m)
  const ip = await linksec('check', '192.0.2.1', '--config', dir)
  assert.equal(ip.code, 65)
  assert.match(ip.err, /an IP address has no policy domain/)
  assert.equal((await linksec('check')).code, 2)
})

test('record prints the TXT record for the level this configuration performs', async () => {
  // No certificate yet: no STARTTLS, so nothing but level 0 may be published.
  const bare = await linksec('record', 'example.test', '--config', dir)
  assert.equal(bare.out, '_linksec.example.test. IN TXT "v=LINKSEC1; level=0; ttl=7200; sig=optional"\n')
  assert.match(bare.err, /declares level 0: no STARTTLS/)
  const init = await linksec('tls', 'init', '--postfix', '--hostname', 'mx.example.test', '--config', dir)
  assert.equal(init.code, 0, init.err)
  const r = await linksec('record', 'example.test', '--config', dir)
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out, '_linksec.example.test. IN TXT "v=LINKSEC1; level=3; ttl=7200; sig=optional"\n')
  const capDir = world.configIni({ main: { level: 4 } })
  await linksec('tls', 'init', '--hostname', 'mx.example.test', '--config', capDir)
  const capped = await linksec('record', 'example.test', '--config', capDir)
  assert.equal(capped.out, '_linksec.example.test. IN TXT "v=LINKSEC1; level=1; ttl=86400; sig=optional"\n')
  assert.match(capped.err, /declares level 1: level 2 needs \[main\] mailboxes_tls_only=true/)
  const json = await linksec('record', 'example.test', '--json', '--config', dir)
  assert.deepEqual(JSON.parse(json.out), {
    name: '_linksec.example.test.',
    type: 'TXT',
    value: 'v=LINKSEC1; level=3; ttl=7200; sig=optional',
    level: 3,
  })
})

test('check of our own domain says the level record and EHLO declare', async () => {
  const own = world.configIni({ main: { mailboxes_tls_only: true, domain: 'example.test' } })
  const before = JSON.parse((await linksec('check', 'example.test', '--json', '--config', own)).out)
  assert.deepEqual(before.own_declaration.declares, false)
  await linksec('tls', 'init', '--hostname', 'mx.example.test', '--config', own)
  const after = await linksec('check', 'example.test', '--config', own)
  assert.match(after.out, /this server declares: level 3\n/)
  assert.match((await linksec('record', '--config', own)).out, /level=3;/)
})
