/**
 * Real Postfix tooling against the socketmap server: `postmap -q <key>
 * socketmap:inet:127.0.0.1:<port>:linksec` for each kind of domain, with the
 * policy engine looking things up in the private DNS/HTTPS world.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { loadConfig } from '../../core/config'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import type { Service } from '../../core/service'
import { startSocketmapService } from '../../milter/socketmap/server'
import { freePort, waitForPort } from '../helpers/ports'
import { needTools, which } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

let world: World
let svc: Service
let pfDir: string
let port: number

before(async () => {
  world = await startWorld({
    zone: {
      '_linksec.encrypt.test': { TXT: ['v=LINKSEC1; level=2; ttl=600'] },
      '_mta-sts.sts.test': { TXT: ['v=STSv1; id=1;'] },
      'dane.test': { MX: ['10 mx.dane.test'], secure: true },
      // A bracketed next hop is its own policy domain: no MX there, so the host itself is checked.
      'mx.dane.test': { A: ['127.0.0.1'], secure: true },
      '_25._tcp.mx.dane.test': {
        TLSA: [{ usage: 2, selector: 0, matchingType: 1, data: Buffer.alloc(32, 1) }],
        secure: true,
      },
      'broken.test': { fault: 'servfail' },
    },
    hosts: ['mta-sts.sts.test'],
    routes: {
      'mta-sts.sts.test/.well-known/mta-sts.txt': {
        body: 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmx: *.backup.sts.test\nmax_age: 86400\n',
      },
    },
  })
  const dir = world.configIni(
    {},
    {
      'linksec.domains.json': JSON.stringify({
        policies: { 'static.test': { mode: 'enforce', mxs: ['.static.test'] } },
      }),
    },
  )
  const rt = createRuntime(loadConfig(dir), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
  })
  svc = await startSocketmapService(rt, { listen: 'inet:127.0.0.1:0' })
  port = Number(/:(\d+)$/.exec(svc.address)![1])
  // postmap needs a configuration directory; no /etc/postfix/main.cf is assumed.
  pfDir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-postmap-'))
  fs.writeFileSync(path.join(pfDir, 'main.cf'), 'compatibility_level = 3.6\n')
  fs.writeFileSync(path.join(pfDir, 'master.cf'), '')
})

after(async () => {
  await svc?.close(100)
  await world?.close()
  if (pfDir) fs.rmSync(pfDir, { recursive: true, force: true })
})

/** postmap in a child process, without blocking this process (the server under test lives here). */
function postmap(key: string, map = 'linksec'): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const args = ['-c', pfDir, '-q', key, `socketmap:inet:127.0.0.1:${port}:${map}`]
    const child = spawn(which('postmap')!, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({ status, out: out.trim(), err: err.trim() })
    })
  })
}

test('postmap -q returns the expected policy for each kind of domain', async (t) => {
  if (!needTools(t, { postmap: 'postfix' })) return
  const expect: [string, number, string][] = [
    ['dane.test', 0, 'dane-only'],
    ['sts.test', 0, 'secure match=mx.sts.test:.backup.sts.test servername=hostname'],
    ['static.test', 0, 'secure match=.static.test servername=hostname'],
    ['encrypt.test', 0, 'encrypt'],
    ['[mx.dane.test]:25', 0, 'dane-only'],
    ['nothing.test', 1, ''],
    ['[192.0.2.1]:25', 1, ''],
  ]
  for (const [key, status, out] of expect) {
    const r = await postmap(key)
    assert.equal(r.status, status, `${key}: ${r.err}`)
    assert.equal(r.out, out, key)
  }
})

test('postmap: a failed lookup is a temporary error, an unknown map name a permanent one', async (t) => {
  if (!needTools(t, { postmap: 'postfix' })) return
  const temp = await postmap('broken.test')
  assert.notEqual(temp.status, 0)
  assert.equal(temp.out, '')
  assert.match(temp.err, /broken\.test/)
  const perm = await postmap('sts.test', 'other')
  assert.notEqual(perm.status, 0)
  assert.match(perm.err, /unknown map "other"/)
})

test('linksec serve answers postmap on its configured socketmap listener', async (t) => {
  if (!needTools(t, { postmap: 'postfix' })) return
  const servePort = await freePort()
  const dir = world.configIni({
    milter: { enabled: false },
    http: { enabled: false },
    socketmap: { listen: `inet:127.0.0.1:${servePort}`, name: 'tlspolicy' },
  })
  const child = spawn(
    process.execPath,
    [path.resolve(__dirname, '..', '..', 'bin', 'linksec.js'), 'serve', '--config', dir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  t.after(() => {
    child.kill('SIGTERM')
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  await waitForPort(servePort)
  const savedPort = port
  port = servePort
  try {
    const r = await postmap('sts.test', 'tlspolicy')
    assert.equal(r.status, 0, r.err)
    assert.equal(r.out, 'secure match=mx.sts.test:.backup.sts.test servername=hostname')
  } finally {
    port = savedPort
  }
  assert.match(out, new RegExp(`socketmap listening on inet:127.0.0.1:${servePort}`))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
})

test('[socketmap] tlsrpt: false (default) leaves the reply as Postfix 3.7 reads it; true adds the 3.10+ attributes', async (t) => {
  if (!needTools(t, { postmap: 'postfix' })) return
  const plain = await postmap('sts.test')
  assert.equal(plain.out, 'secure match=mx.sts.test:.backup.sts.test servername=hostname')
  const rt = createRuntime(loadConfig(world.configIni({ socketmap: { tlsrpt: true } })), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
  })
  const withAttrs = await startSocketmapService(rt, { listen: 'inet:127.0.0.1:0' })
  const savedPort = port
  port = Number(/:(\d+)$/.exec(withAttrs.address)![1])
  try {
    const r = await postmap('sts.test')
    assert.equal(r.status, 0, r.err)
    assert.equal(
      r.out,
      'secure match=mx.sts.test:.backup.sts.test servername=hostname' +
        ' policy_type=sts policy_domain=sts.test policy_ttl=86400' +
        ' mx_host_pattern=mx.sts.test mx_host_pattern=*.backup.sts.test' +
        ' { policy_string = version: STSv1 } { policy_string = mode: enforce }' +
        ' { policy_string = mx: mx.sts.test } { policy_string = mx: *.backup.sts.test }' +
        ' { policy_string = max_age: 86400 }',
    )
    // Only MTA-STS policies carry them: DANE and linksec's own levels answer as before.
    assert.equal((await postmap('dane.test')).out, 'dane-only')
    assert.equal((await postmap('encrypt.test')).out, 'encrypt')
  } finally {
    port = savedPort
    await withAttrs.close(100)
  }
})
