/**
 * examples/postfix: the main.cf lines (and master.cf lines, when the file is
 * there) load into a real private Postfix with `postconf -e`, `postfix check`
 * passes without warnings, and Postfix reloads with them.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { appendFileSync, copyFileSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { freePort, waitForPort } from '../helpers/ports'
import { needTools, needRoot } from '../helpers/tools'
import { installPostfixExample, mainCfSettings } from './examples-helpers'

const ROOT = path.resolve(__dirname, '../../..')
const EXAMPLE = path.join(ROOT, 'examples/postfix')
const PEERS = path.resolve(ROOT, '..', 'shared', 'peers')
const ENV = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }

function run(cmd: string, args: string[], env = ENV): { status: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: 60_000 })
  return { status: r.status, out: r.stdout, err: r.stderr }
}

/** Starts a postfix-up.sh instance and returns its config directory; the caller stops it. */
async function startPostfix(): Promise<{ dir: string; conf: string }> {
  const env = { ...ENV, PORT: String(await freePort()), SINK_PORT: String(await freePort()) }
  const r = run(path.join(PEERS, 'postfix-up.sh'), [], env)
  assert.equal(r.status, 0, r.err)
  const dir = /export PF_DIR='([^']+)'/.exec(r.out)?.[1]
  assert.ok(dir, r.out)
  return { dir, conf: path.join(dir, 'etc') }
}

test('the main.cf fragment has the settings the design fixes', () => {
  const settings = new Map(mainCfSettings(readFileSync(path.join(EXAMPLE, 'main.cf'), 'utf8')))
  assert.equal(settings.get('smtpd_milters'), 'inet:127.0.0.1:8891')
  assert.equal(settings.get('milter_default_action'), 'tempfail')
  assert.equal(settings.get('milter_protocol'), '6')
  assert.equal(settings.get('smtp_tls_policy_maps'), 'socketmap:inet:127.0.0.1:8461:linksec')
  assert.equal(settings.get('smtp_tls_security_level'), 'may')
})

test('a private Postfix accepts the example lines: postconf, postfix check, reload', async (t) => {
  if (!needTools(t, { postfix: 'postfix', postconf: 'postfix' })) return
  if (!needRoot(t, 'postfix start needs root')) return
  const pf = await startPostfix()
  try {
    const settings = installPostfixExample(pf.conf)
    copyFileSync(path.join(pf.conf, 'main.cf'), path.join(pf.dir, 'main.cf.applied'))
    for (const [k, v] of settings) {
      const r = run('postconf', ['-c', pf.conf, '-h', k])
      assert.equal(r.err.trim(), '', `postconf ${k} prints no warning`)
      assert.equal(r.out.trim(), v, k)
    }
    const n = run('postconf', ['-c', pf.conf, '-n'])
    assert.equal(n.err.trim(), '', 'postconf -n prints no warning (no unknown or misspelt parameter)')
    const check = run('postfix', ['-c', pf.conf, 'check'])
    assert.equal(check.status, 0, check.err)
    assert.equal(check.err.trim(), '', 'postfix check prints no warning')
    const reload = run('postfix', ['-c', pf.conf, 'reload'])
    assert.equal(reload.status, 0, reload.err)
    assert.equal(run('postfix', ['-c', pf.conf, 'status']).status, 0)
  } finally {
    run(path.join(PEERS, 'postfix-down.sh'), [pf.dir])
  }
})

test('the signing submission service (submission.master.cf) loads: postfix check, reload, it listens', async (t) => {
  if (!needTools(t, { postfix: 'postfix', postconf: 'postfix' })) return
  if (!needRoot(t, 'postfix start needs root')) return
  const text = readFileSync(path.join(EXAMPLE, 'submission.master.cf'), 'utf8')
  // linksec (8891) before OpenDKIM (8892): test/integration/sign-roundtrip.test.ts shows why.
  assert.match(text, /^ {2}-o smtpd_milters=inet:127\.0\.0\.1:8891,inet:127\.0\.0\.1:8892$/m)
  assert.match(text, /^ {2}-o smtpd_sasl_auth_enable=yes$/m)
  const pf = await startPostfix()
  try {
    installPostfixExample(pf.conf)
    const port = await freePort()
    // The only change: a loopback port instead of 587 (postfix-up.sh's main.cf has the certificate encrypt needs).
    appendFileSync(
      path.join(pf.conf, 'master.cf'),
      '\n' + text.replace(/^submission inet/m, `127.0.0.1:${port} inet`),
    )
    const check = run('postfix', ['-c', pf.conf, 'check'])
    assert.equal(check.status, 0, check.err)
    assert.equal(check.err.trim(), '', 'postfix check prints no warning')
    assert.equal(run('postfix', ['-c', pf.conf, 'reload']).status, 0)
    await waitForPort(port, '127.0.0.1', 15_000)
  } finally {
    run(path.join(PEERS, 'postfix-down.sh'), [pf.dir])
  }
})
