/**
 * The operator's view, end to end: a real Postfix (with the example main.cf
 * lines) hands messages to `linksec serve`; a real Prometheus scrapes its
 * /metrics, and PromQL over Prometheus's HTTP API returns the counts of the
 * messages this test sent. The live exposition also passes promtool.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import { freePort, waitForPort } from '../helpers/ports'
import { swaks } from '../helpers/swaks'
import { needTools, needRoot } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'
import { installPostfixExample } from './examples-helpers'

const ROOT = path.resolve(__dirname, '../../..')
const PEERS = path.resolve(ROOT, '..', 'shared', 'peers')
const ENV = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }
const PLAIN = 3
const TAGGED = 2

interface Ports {
  milter: number
  socketmap: number
  http: number
  smtpd: number
  sink: number
  prometheus: number
}

async function ports(): Promise<Ports> {
  const p: number[] = []
  while (p.length < 6) {
    const n = await freePort()
    if (!p.includes(n)) p.push(n)
  }
  const [milter, socketmap, http, smtpd, sink, prometheus] = p as [
    number,
    number,
    number,
    number,
    number,
    number,
  ]
  return { milter, socketmap, http, smtpd, sink, prometheus }
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = ENV) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: 60_000 })
  return { status: r.status, out: r.stdout ?? '', err: r.stderr ?? '' }
}

/** `linksec serve` as an operator runs it; resolves once the HTTP listener is up. */
async function startServe(
  configDir: string,
  p: Ports,
): Promise<{ proc: ChildProcess; output: () => string }> {
  const proc = spawn(
    process.execPath,
    [path.join(ROOT, 'dist/bin/linksec.js'), 'serve', '--config', configDir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  proc.stdout.on('data', (d: Buffer) => (output += d.toString()))
  proc.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`linksec serve exited ${code}:\n${output}`))),
  )
  await Promise.race([Promise.all([waitForPort(p.http), waitForPort(p.milter)]), exited])
  return { proc, output: () => output }
}

async function stopServe(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return
  const gone = new Promise((r) => proc.once('exit', r))
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
  await gone
  clearTimeout(timer)
}

/** Postfix from postfix-up.sh, then the example main.cf lines with this test's ports. */
function startPostfix(p: Ports): string {
  const up = sh(path.join(PEERS, 'postfix-up.sh'), [], {
    ...ENV,
    PORT: String(p.smtpd),
    SINK_PORT: String(p.sink),
  })
  assert.equal(up.status, 0, up.err)
  const dir = /export PF_DIR='([^']+)'/.exec(up.out)?.[1]
  assert.ok(dir, up.out)
  const conf = path.join(dir, 'etc')
  installPostfixExample(conf, p)
  assert.equal(sh('postfix', ['-c', conf, 'reload']).status, 0)
  return dir
}

function startPrometheus(p: Ports): string {
  const env = { ...ENV, PORT: String(p.prometheus), TARGET: `127.0.0.1:${p.http}`, JOB: 'linksec' }
  const r = sh(path.join(PEERS, 'prometheus-up.sh'), [], env)
  assert.equal(r.status, 0, r.err)
  const dir = /export PROM_DIR='([^']+)'/.exec(r.out)?.[1]
  assert.ok(dir, r.out)
  return dir
}

function maillog(pfDir: string): string {
  try {
    return readFileSync(path.join(pfDir, 'log/maillog'), 'utf8').split('\n').slice(-30).join('\n')
  } catch {
    return '(no maillog)'
  }
}

/** One instant PromQL query; the value of its single sample, or undefined when empty. */
async function promql(p: Ports, query: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${p.prometheus}/api/v1/query?query=${encodeURIComponent(query)}`)
  const body = (await res.json()) as { status: string; data: { result: { value: [number, string] }[] } }
  assert.equal(body.status, 'success', JSON.stringify(body))
  const [first] = body.data.result
  return first ? Number(first.value[1]) : undefined
}

/** Polls until the query returns `want` (bounded: 40 × 0.5 s); returns the last value seen. */
async function waitForValue(p: Ports, query: string, want: number): Promise<number | undefined> {
  let v: number | undefined
  for (let i = 0; i < 40; i++) {
    v = await promql(p, query)
    if (v === want) return v
    await new Promise((r) => setTimeout(r, 500))
  }
  return v
}

test('Prometheus scrapes linksec serve and PromQL counts the messages sent through Postfix', async (t) => {
  const tools = { postfix: 'postfix', swaks: 'swaks', prometheus: 'prometheus', promtool: 'prometheus' }
  if (!needTools(t, tools)) return
  if (!needRoot(t, 'postfix start needs root')) return
  const p = await ports()
  const cleanup: (() => unknown)[] = []
  let world: World | undefined
  try {
    world = await startWorld()
    cleanup.push(() => world!.close())
    const configDir = world.configIni({
      milter: { listen: `inet:127.0.0.1:${p.milter}` },
      socketmap: { listen: `inet:127.0.0.1:${p.socketmap}` },
      http: { listen: `127.0.0.1:${p.http}` },
      log: { level: 'info' },
    })
    const serve = await startServe(configDir, p)
    cleanup.push(() => stopServe(serve.proc))
    const pfDir = startPostfix(p)
    cleanup.push(() => sh(path.join(PEERS, 'postfix-down.sh'), [pfDir]))

    const why = (out: string) =>
      `${out}\n--- linksec serve:\n${serve.output()}\n--- maillog:\n${maillog(pfDir)}`
    for (let i = 0; i < PLAIN; i++) {
      const r = await swaks({ port: p.smtpd })
      assert.equal(r.status, 0, `plain message ${i} accepted:\n${why(r.out)}`)
    }
    for (let i = 0; i < TAGGED; i++) {
      const r = await swaks({ port: p.smtpd, headers: { 'Link-Security-Required': '3' } })
      assert.match(r.out, /<\*\* +550[ -]5\.7\.10 /, why(r.out))
    }

    const promDir = startPrometheus(p)
    cleanup.push(() => sh(path.join(PEERS, 'peer-down.sh'), [promDir]))

    const total = await waitForValue(
      p,
      'sum(linksec_messages_total{job="linksec",adapter="milter"})',
      PLAIN + TAGGED,
    )
    assert.equal(total, PLAIN + TAGGED, 'every message sent is counted once')
    assert.equal(await promql(p, 'sum(linksec_messages_total{adapter="milter",verdict="reject"})'), TAGGED)
    assert.equal(await promql(p, 'sum(linksec_messages_total{adapter="milter",verdict!="reject"})'), PLAIN)
    assert.equal(
      await promql(p, 'sum(linksec_tagged_messages_total{level="3",outcome="rejected_plaintext"})'),
      TAGGED,
    )
    assert.equal(
      await promql(p, 'sum(linksec_inbound_messages_total{adapter="milter",tls="no"})'),
      PLAIN + TAGGED,
    )
    assert.equal(await promql(p, 'up{job="linksec"}'), 1)
    t.diagnostic(`PromQL: ${PLAIN + TAGGED} messages, ${TAGGED} rejected 5.7.10, ${PLAIN} passed`)

    const live = await (await fetch(`http://127.0.0.1:${p.http}/metrics`)).text()
    const lint = spawnSync('promtool', ['check', 'metrics'], {
      input: live,
      encoding: 'utf8',
      timeout: 30_000,
    })
    assert.equal(`${lint.stdout}${lint.stderr}`.trim(), '', 'promtool check metrics: no problems')
    assert.equal(lint.status, 0)

    const health = await fetch(`http://127.0.0.1:${p.http}/healthz`)
    assert.equal(health.status, 200)
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step()
      } catch (e) {
        t.diagnostic(`cleanup: ${String(e)}`)
      }
    }
  }
})
