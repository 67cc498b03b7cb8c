/**
 * The daily timers of `linksec serve` and the Haraka plugin, on mocked timers
 * and an injected clock: the TLS-report send runs a minute after start and
 * then hourly, never two runs at once, with the runtime in force (a Haraka
 * reload swaps it); the certificate check runs at start and daily. And what
 * the check does on the engine's clock: a certificate linksec made is renewed
 * 30 days before it expires (serve and the Haraka plugin alike), one an
 * operator put there is never touched, not even when it has expired. The
 * send's own semantics (once per day, retries) run against real Redis and
 * HTTPS in test/integration/tlsrpt-daily.test.ts.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { parseConfig } from '../../../core/config'
import { Engine } from '../../../core/engine'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import type { Runtime } from '../../../core/runtime'
import { makeSelfSignedSync } from '../../../core/tls/certificate'
import { checkOwnCertificate, DAY_MS, startCertificateRenewal } from '../../../core/tls/renewal'
import { certificatePaths, ownCertificate, writeOwnCertificate } from '../../../core/tls/store'
import { FIRST_RUN_MS, RUN_EVERY_MS, startDailyReports } from '../../../core/tlsrpt'
import type { HarakaPlugin } from '../../../plugins/haraka'
import { ensureHarakaCertificate } from '../../../plugins/tls'

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-timers-'))
after(() => fs.rmSync(scratch, { recursive: true, force: true }))
let n = 0
const freshDir = () => {
  const d = path.join(scratch, String(n++))
  fs.mkdirSync(d)
  return d
}

function engineAt(dir: string, raw: Record<string, Record<string, unknown>> = {}, now = () => Date.now()) {
  const metrics = createMetrics({ processMetrics: false })
  return new Engine(parseConfig(raw, dir), { log: silentLogger, metrics, now })
}

const flush = () => new Promise((r) => setImmediate(r))

describe('the daily TLS-report send: schedule', () => {
  it('a minute after start, then every hour; stopped, it runs no more', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
    const tick = async (ms: number) => {
      t.mock.timers.tick(ms)
      await flush() // the finished run's promise settles
    }
    const rt = engineAt(freshDir()).runtime
    const runs: Runtime[] = []
    const stop = startDailyReports(rt, async (r) => void runs.push(r))
    await tick(FIRST_RUN_MS - 1)
    assert.equal(runs.length, 0)
    await tick(1)
    assert.equal(runs.length, 1)
    await tick(RUN_EVERY_MS - FIRST_RUN_MS)
    assert.equal(runs.length, 2)
    for (let h = 0; h < 23; h++) await tick(RUN_EVERY_MS)
    assert.equal(runs.length, 25, 'hourly over a day')
    stop()
    await tick(RUN_EVERY_MS * 5)
    assert.equal(runs.length, 25)
  })

  it('a run still going is not doubled; each run gets the runtime in force (Haraka reload)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
    const engine = engineAt(freshDir())
    const first = engine.runtime
    let finish: () => void = () => {}
    const runs: Runtime[] = []
    let current = first
    const stop = startDailyReports(
      () => current,
      (r) => {
        runs.push(r)
        return new Promise<void>((resolve) => (finish = resolve))
      },
    )
    t.mock.timers.tick(FIRST_RUN_MS)
    t.mock.timers.tick(RUN_EVERY_MS * 3)
    assert.equal(runs.length, 1, 'the hung run is not started again')
    finish()
    await flush()
    current = await engine.reconfigure(parseConfig({ tlsrpt: { contact: 'x@y.test' } }, first.config.dir))
    t.mock.timers.tick(RUN_EVERY_MS)
    assert.equal(runs.length, 2)
    assert.equal(runs[1], current)
    assert.notEqual(runs[1], first)
    finish()
    stop()
  })

  it('a run that throws is logged and the next still runs', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
    const warned: string[] = []
    const engine = new Engine(parseConfig({}, freshDir()), {
      log: { ...silentLogger, warn: (m: string) => void warned.push(m) },
      metrics: createMetrics({ processMetrics: false }),
    })
    let runs = 0
    const stop = startDailyReports(engine.runtime, async () => {
      runs++
      throw new Error('redis down')
    })
    t.mock.timers.tick(FIRST_RUN_MS)
    await flush()
    t.mock.timers.tick(RUN_EVERY_MS)
    await flush()
    stop()
    assert.equal(runs, 2)
    assert.deepEqual(warned, ['TLS reports not sent', 'TLS reports not sent'])
  })
})

describe('certificate renewal: schedule and the engine clock', () => {
  it('checks at start and then daily; [tls] renew=false never', (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] })
    const rt = engineAt(freshDir()).runtime
    let checks = 0
    const stop = startCertificateRenewal(rt, async () => {
      checks++
    })
    assert.equal(checks, 1)
    t.mock.timers.tick(DAY_MS * 3)
    assert.equal(checks, 4)
    stop()
    const off = engineAt(freshDir(), { tls: { renew: false } }).runtime
    let offChecks = 0
    startCertificateRenewal(off, async () => {
      offChecks++
    })()
    t.mock.timers.tick(DAY_MS * 3)
    assert.equal(offChecks, 0)
  })

  it('serve: ours is kept until 30 days before expiry, then renewed (new key, metric updated)', async () => {
    const dir = freshDir()
    let now = Date.now()
    const engine = engineAt(dir, {}, () => now)
    const paths = certificatePaths(engine.runtime.config)
    const made = writeOwnCertificate(paths, makeSelfSignedSync('mx.serve.test'), 'mx.serve.test')
    const key = fs.readFileSync(paths.key, 'utf8')
    now = made.notAfter.getTime() - 31 * DAY_MS
    await checkOwnCertificate(engine.runtime)
    assert.equal(ownCertificate(paths)?.fingerprint256, made.fingerprint256, 'kept 31 days before')
    now = made.notAfter.getTime() - 29 * DAY_MS
    await checkOwnCertificate(engine.runtime)
    const renewed = ownCertificate(paths)
    assert.ok(renewed, 'still ours')
    assert.notEqual(renewed.fingerprint256, made.fingerprint256)
    assert.notEqual(fs.readFileSync(paths.key, 'utf8'), key)
    assert.equal(renewed.subjectAltName, 'DNS:mx.serve.test')
    const text = await engine.runtime.metrics.registry.metrics()
    assert.match(
      text,
      new RegExp(
        `linksec_tls_certificate_expiry_timestamp_seconds\\{file="${paths.cert}"\\} ${Math.floor(renewed.notAfter.getTime() / 1000)}`,
      ),
    )
  })

  it('serve: an operator’s certificate is never touched, even expired; none is never made', async () => {
    const dir = freshDir()
    let now = Date.now()
    const engine = engineAt(dir, {}, () => now)
    const paths = certificatePaths(engine.runtime.config)
    const op = makeSelfSignedSync('real.example.net')
    fs.writeFileSync(paths.cert, op.certPem)
    fs.writeFileSync(paths.key, op.keyPem)
    now += 400 * DAY_MS // long expired
    await checkOwnCertificate(engine.runtime)
    assert.equal(fs.readFileSync(paths.cert, 'utf8'), op.certPem)
    assert.equal(fs.readFileSync(paths.key, 'utf8'), op.keyPem)
    assert.equal(fs.existsSync(`${paths.cert}.linksec`), false)
    const text = await engine.runtime.metrics.registry.metrics()
    assert.doesNotMatch(text, /linksec_tls_certificate_expiry_timestamp_seconds\{/, 'no metric for theirs')
    const empty = freshDir()
    await checkOwnCertificate(engineAt(empty, {}, () => now).runtime)
    assert.deepEqual(fs.readdirSync(empty), [])
  })

  it('Haraka: at (re)start on the engine clock, ours is renewed when due and an operator’s is left alone', () => {
    const plugin = (reloads: string[]): HarakaPlugin => ({
      name: 'linksec',
      config: { get: () => ({}) },
      register_hook: () => {},
      haraka_require: () => ({ tls_valid: false, load_tls_ini: () => reloads.push('load_tls_ini') }),
      logdebug() {},
      loginfo() {},
      logwarn() {},
      logerror() {},
      logcrit() {},
    })
    const dir = freshDir()
    fs.writeFileSync(path.join(dir, 'me'), 'mx.haraka.test\n')
    let now = Date.now()
    const rt = engineAt(dir, {}, () => now).runtime
    const reloads: string[] = []
    ensureHarakaCertificate(plugin(reloads), rt, dir)
    const paths = { cert: path.join(dir, 'tls_cert.pem'), key: path.join(dir, 'tls_key.pem') }
    const made = ownCertificate(paths)!
    assert.ok(made)
    now = made.notAfter.getTime() - 31 * DAY_MS
    ensureHarakaCertificate(plugin(reloads), rt, dir)
    assert.equal(ownCertificate(paths)?.fingerprint256, made.fingerprint256)
    now = made.notAfter.getTime() - 29 * DAY_MS
    ensureHarakaCertificate(plugin(reloads), rt, dir)
    assert.notEqual(ownCertificate(paths)?.fingerprint256, made.fingerprint256)
    assert.deepEqual(reloads, ['load_tls_ini', 'load_tls_ini'], 'made, then renewed')

    const opDir = freshDir()
    const op = makeSelfSignedSync('real.example.net')
    fs.writeFileSync(path.join(opDir, 'tls_cert.pem'), op.certPem)
    fs.writeFileSync(path.join(opDir, 'tls_key.pem'), op.keyPem)
    now = Date.now() + 400 * DAY_MS
    ensureHarakaCertificate(plugin(reloads), engineAt(opDir, {}, () => now).runtime, opDir)
    assert.equal(fs.readFileSync(path.join(opDir, 'tls_cert.pem'), 'utf8'), op.certPem)
    assert.equal(fs.readFileSync(path.join(opDir, 'tls_key.pem'), 'utf8'), op.keyPem)
    assert.equal(reloads.length, 2)
  })
})
