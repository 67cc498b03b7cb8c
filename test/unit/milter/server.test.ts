import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { parseConfig } from '../../../core/config'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime, type Runtime } from '../../../core/runtime'
import type { Service } from '../../../core/service'
import { CONTINUE } from '../../../core/verdict'
import { messageStep, inboundLinkStep } from '../../../core/message'
import { createMilterApp } from '../../../milter/app'
import { startMilterService } from '../../../milter/server'
import { Proto } from '../../../milter/wire/codes'
import { ResponseDecoder } from '../../../milter/wire/decode'
import { encodeCommand } from '../../../milter/wire/encode'
import { MilterClient, runTransaction, type TransactionSpec } from '../../helpers/milter-client'

const SPEC: TransactionSpec = {
  mail: ['<alice@example.org>'],
  rcpt: [['<bob@example.net>']],
  headers: [['Subject', 'hello']],
  body: 'Hi Bob.\r\n',
}

function runtime(milter: Record<string, string> = {}): Runtime {
  const config = parseConfig({ main: { authserv_id: 'mx.example.net' }, milter }, '/tmp')
  return createRuntime(config, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
}

async function metric(rt: Runtime, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await rt.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name)
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return v ? v.value : 0
}

const services: Service[] = []
/** The milter with the inbound-link policy only, so other policies added to the default list do not change these tests. */
async function start(rt: Runtime, opts: Parameters<typeof startMilterService>[1] = {}): Promise<Service> {
  const handler = createMilterApp(rt, { steps: [inboundLinkStep] })
  const s = await startMilterService(rt, { listen: 'inet:127.0.0.1:0', handler, ...opts })
  services.push(s)
  return s
}
after(() => Promise.all(services.map((s) => s.close(0))))

async function negotiated(address: string): Promise<MilterClient> {
  const c = await MilterClient.connect(address)
  await c.negotiate()
  return c
}

describe('milter server', () => {
  it('serves a whole Postfix-style conversation over TCP', async () => {
    const svc = await start(runtime())
    assert.match(svc.address, /^inet:127\.0\.0\.1:\d+$/)
    const c = await negotiated(svc.address)
    const r = await runTransaction(c, SPEC)
    assert.equal(r.step, 'eom')
    assert.deepEqual(r.modifications, [
      { type: 'insertHeader', index: 0, name: 'Authentication-Results', value: 'mx.example.net; x-tls=none' },
    ])
    await c.quit()
  })

  it('serves a unix socket, replacing a stale socket file, reachable by other users', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'milter-'))
    const sock = path.join(dir, 'milter.sock')
    // A killed process leaves its socket file behind (a clean close would remove it).
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`,
    ])
    await new Promise((r) => child.stdout.once('data', r))
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    assert.ok(fs.statSync(sock).isSocket(), 'a stale socket file is there')
    try {
      const svc = await start(runtime(), { listen: `unix:${sock}` })
      assert.equal(svc.address, `unix:${sock}`)
      assert.equal(fs.statSync(sock).mode & 0o777, 0o666)
      const c = await negotiated(svc.address)
      assert.equal((await runTransaction(c, SPEC)).step, 'eom')
      await c.quit()
      await svc.close(0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('leaves DATA unanswered on a unix socket (no Nagle there), answers it over TCP', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'milter-'))
    try {
      const rt = runtime()
      // handler undefined: the service builds linksec's own app for its transport.
      const unix = await start(rt, { listen: `unix:${path.join(dir, 'm.sock')}`, handler: undefined })
      const tcp = await start(rt, { handler: undefined })
      for (const [svc, unanswered] of [
        [unix, true],
        [tcp, false],
      ] as const) {
        const c = await negotiated(svc.address)
        assert.equal((c.negotiation!.protocol & Proto.noReplyData) !== 0, unanswered, svc.address)
        await c.quit()
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses to take over a unix socket another process listens on', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'milter-'))
    const sock = path.join(dir, 'busy.sock')
    const other = net.createServer().listen(sock)
    await new Promise((r) => other.once('listening', r))
    try {
      await assert.rejects(
        startMilterService(runtime(), { listen: `unix:${sock}` }),
        /another process is listening/,
      )
    } finally {
      other.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  const faults: Array<[string, Buffer, string]> = [
    ['garbage', Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'oversized_frame'],
    ['an unknown command', Buffer.from([0, 0, 0, 1, 0x5a]), 'unknown_command'],
    ['a frame out of stage order', encodeCommand({ type: 'rcpt', args: ['<x@y>'] }), 'stage_order'],
    ['a zero-length frame', Buffer.from([0, 0, 0, 0]), 'empty_frame'],
  ]
  for (const [name, bytes, reason] of faults) {
    it(`closes only the connection that sent ${name}, counting ${reason}`, async () => {
      const rt = runtime()
      const svc = await start(rt)
      const good = await negotiated(svc.address)
      const bad = await negotiated(svc.address)
      bad.sendRaw(bytes)
      await bad.waitClosed()
      assert.equal(await metric(rt, 'linksec_milter_protocol_errors_total', { reason }), 1)
      assert.equal((await runTransaction(good, SPEC)).step, 'eom', 'the other session goes on')
      await good.quit()
    })
  }

  it('refuses a frame longer than max_frame_bytes from its length alone', async () => {
    const rt = runtime({ max_frame_bytes: '70000' })
    const svc = await start(rt)
    const c = await negotiated(svc.address)
    const head = Buffer.alloc(5)
    head.writeUInt32BE(70001)
    head[4] = 0x42
    c.sendRaw(head)
    await c.waitClosed()
    assert.equal(await metric(rt, 'linksec_milter_protocol_errors_total', { reason: 'oversized_frame' }), 1)
  })

  it('closes a stalled peer after idle_timeout_ms, mid-frame', async () => {
    const rt = runtime({ idle_timeout_ms: '1000' })
    const svc = await start(rt)
    const c = await negotiated(svc.address)
    c.sendRaw(Buffer.from([0, 0, 0]))
    await c.waitClosed(5000)
    assert.equal(await metric(rt, 'linksec_milter_protocol_errors_total', { reason: 'idle_timeout' }), 1)
  })

  it('refuses sessions beyond max_sessions and tracks the session gauge', async () => {
    const rt = runtime({ max_sessions: '1' })
    const svc = await start(rt)
    const first = await negotiated(svc.address)
    assert.equal(await metric(rt, 'linksec_milter_sessions'), 1)
    const second = await MilterClient.connect(svc.address)
    await second.waitClosed()
    assert.equal(await metric(rt, 'linksec_milter_protocol_errors_total', { reason: 'too_many_sessions' }), 1)
    await first.quit()
    for (let i = 0; i < 50 && (await metric(rt, 'linksec_milter_sessions')) !== 0; i++) await sleep(10)
    assert.equal(await metric(rt, 'linksec_milter_sessions'), 0)
  })

  it('sends the end-of-message actions and the final reply in one write', async () => {
    const rt = runtime()
    const three = messageStep('three', async () => ({
      verdict: CONTINUE,
      headers: [
        { op: 'append', name: 'X-A', value: '1' },
        { op: 'append', name: 'X-B', value: '2' },
        { op: 'prepend', name: 'X-C', value: '3' },
      ],
    }))
    const svc = await start(rt, { handler: createMilterApp(rt, { steps: [three] }) })
    const c = await negotiated(svc.address)
    const writes: Buffer[] = []
    // eslint-disable-next-line @typescript-eslint/unbound-method -- put back on the prototype below, where `this` is bound again
    const original = net.Socket.prototype.write
    const port = c.socket.localPort
    net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
      if (this.remotePort === port) writes.push(Buffer.from(args[0] as Buffer))
      return (original as (...a: unknown[]) => boolean).apply(this, args)
    }
    try {
      const r = await runTransaction(c, SPEC)
      assert.equal(r.modifications.length, 3)
    } finally {
      net.Socket.prototype.write = original
    }
    // One write answers DATA (see milterNeeds), one carries every end-of-message action and the final reply.
    const batches = writes.map((w) => new ResponseDecoder(1 << 20).push(w).map((r) => r.type))
    assert.deepEqual(batches, [['continue'], ['insertHeader', 'addHeader', 'addHeader', 'continue']])
    await c.quit()
  })

  it('on close, finishes the message in flight, closes idle sessions at once, then resolves', async () => {
    const rt = runtime()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const slow = messageStep('slow', async () => {
      await gate
      return { verdict: CONTINUE, headers: [{ op: 'append', name: 'X-Done', value: 'yes' }] }
    })
    const svc = await startMilterService(rt, {
      listen: 'inet:127.0.0.1:0',
      handler: createMilterApp(rt, { steps: [slow] }),
    })
    const idle = await negotiated(svc.address)
    const busy = await negotiated(svc.address)
    const inFlight = runTransaction(busy, SPEC)
    await sleep(50)
    const closing = svc.close(5000)
    await idle.waitClosed(2000)
    assert.equal(busy.closed, false, 'the busy session is still open')
    await assert.rejects(MilterClient.connect(svc.address), 'no new connections')
    release()
    const r = await inFlight
    assert.deepEqual(r.modifications, [{ type: 'addHeader', name: 'X-Done', value: 'yes' }])
    await busy.waitClosed(2000)
    await closing
  })

  it('drops sessions still busy when the grace period ends', async () => {
    const rt = runtime()
    const never = messageStep('never', () => new Promise(() => {}))
    const svc = await startMilterService(rt, {
      listen: 'inet:127.0.0.1:0',
      handler: createMilterApp(rt, { steps: [never], deadlineMs: 60000 }),
    })
    const c = await negotiated(svc.address)
    void runTransaction(c, SPEC).catch(() => {})
    await sleep(50)
    await svc.close(100)
    await c.waitClosed(2000)
  })
})

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
