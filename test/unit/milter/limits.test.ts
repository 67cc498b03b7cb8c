import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import * as net from 'node:net'
import { after, describe, it } from 'node:test'
import { parseConfig } from '../../../core/config'
import { createLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime, type Runtime } from '../../../core/runtime'
import type { Service } from '../../../core/service'
import { CONTINUE } from '../../../core/verdict'
import { messageStep } from '../../../core/message'
import { createMilterApp } from '../../../milter/app'
import { startMilterService } from '../../../milter/server'
import { Cmd } from '../../../milter/wire/codes'
import { encodeCommand } from '../../../milter/wire/encode'
import type { MilterResponse } from '../../../milter/wire/types'
import { MilterClient, runTransaction, type TransactionSpec } from '../../helpers/milter-client'

const SPEC: TransactionSpec = {
  mail: ['<alice@example.org>'],
  rcpt: [['<bob@example.net>']],
  headers: [['Subject', 'hello']],
  body: 'Hi Bob.\r\n',
}

function runtime(milter: Record<string, string> = {}): { rt: Runtime; lines: string[] } {
  const lines: string[] = []
  const config = parseConfig({ main: { authserv_id: 'mx.example.net' }, milter }, '/tmp')
  const log = createLogger({ level: 'warn', write: (l) => lines.push(l) })
  return { rt: createRuntime(config, { log, metrics: createMetrics({ processMetrics: false }) }), lines }
}

async function metric(rt: Runtime, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await rt.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name)
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return v ? v.value : 0
}

const services: Service[] = []
/** A milter whose one policy reads the body (so bodies are kept) and lets everything through. */
async function start(rt: Runtime): Promise<Service> {
  const reader = messageStep('reader', async () => ({ verdict: CONTINUE, headers: [] }), {
    needsBody: true,
  })
  const s = await startMilterService(rt, {
    listen: 'inet:127.0.0.1:0',
    handler: createMilterApp(rt, { steps: [reader] }),
  })
  services.push(s)
  return s
}
after(() => Promise.all(services.map((s) => s.close(0))))

async function negotiated(address: string): Promise<MilterClient> {
  const c = await MilterClient.connect(address)
  await c.negotiate()
  return c
}

function text(r: { final: MilterResponse }): string {
  return r.final.type === 'replyCode' ? r.final.text : r.final.type
}

describe('milter memory bounds (milter/limits.ts)', () => {
  it('pins the defaults', () => {
    const m = parseConfig({}, '/x').milter
    assert.deepEqual(
      [
        m.max_headers,
        m.max_header_bytes,
        m.max_macro_bytes,
        m.max_held_bytes,
        m.negotiation_timeout_ms,
        m.frame_timeout_ms,
        m.session_timeout_ms,
      ],
      [1000, 1024 * 1024, 64 * 1024, 40 * 1024 * 1024, 10000, 10000, 3600000],
    )
  })

  it('a header flood (count or bytes) gets 552 5.3.4, is counted, and the next message passes', async () => {
    const { rt } = runtime({ max_headers: '50', max_header_bytes: '4096' })
    const svc = await start(rt)
    const many = Array.from({ length: 60 }, (_, i): [string, string] => [`X-H${i}`, 'v'])
    assert.match(
      text(await runTransaction(await negotiated(svc.address), { ...SPEC, headers: many })),
      /^552 5\.3\.4 .*more than 50 header fields/,
    )
    const big = Array.from({ length: 10 }, (_, i): [string, string] => [`X-B${i}`, 'b'.repeat(1000)])
    assert.match(
      text(await runTransaction(await negotiated(svc.address), { ...SPEC, headers: big })),
      /^552 5\.3\.4 .*larger than 4096 bytes/,
    )
    assert.equal((await runTransaction(await negotiated(svc.address), SPEC)).final.type, 'continue')
    assert.equal(await metric(rt, 'linksec_milter_limits_total', { limit: 'headers' }), 1)
    assert.equal(await metric(rt, 'linksec_milter_limits_total', { limit: 'header_bytes' }), 1)
  })

  it('bodies held across sessions are bounded: 451 4.3.1 while full, 552 5.3.4 for one too big alone, fine again once freed', async () => {
    const { rt } = runtime({ max_held_bytes: String(1024 * 1024) })
    const svc = await start(rt)
    const a = await negotiated(svc.address)
    const b = await negotiated(svc.address)
    const body = Buffer.alloc(700 * 1024, 'a')
    // a sends its body but not yet its end of message: it holds 700 KB.
    for (const [type, ev] of [
      ['connect', { type: 'connect', host: 'h', family: 'inet4', port: 1, address: '192.0.2.1' }],
      ['helo', { type: 'helo', name: 'h' }],
      ['mail', { type: 'mail', args: ['<a@example.org>'] }],
      ['rcpt', { type: 'rcpt', args: ['<b@example.net>'] }],
      ['data', { type: 'data' }],
      ['eoh', { type: 'eoh' }],
    ] as const)
      await a.event(ev as never, type === 'connect' ? [['j', 'mta']] : undefined)
    for (let at = 0; at < body.length; at += 65535)
      await a.event({ type: 'body', chunk: body.subarray(at, at + 65535) })
    a.flush() // body events get no reply (NR_BODY): the client buffers them
    assert.match(text(await runTransaction(b, { ...SPEC, body })), /^451 4\.3\.1 .*too many messages/)
    const eom = await a.event({ type: 'endOfMessage', chunk: Buffer.alloc(0) })
    assert.equal(eom.responses.at(-1)!.type, 'continue', 'the message that fitted passes')
    assert.equal(
      (await runTransaction(await negotiated(svc.address), { ...SPEC, body })).final.type,
      'continue',
      'room again once a is done',
    )
    assert.match(
      text(
        await runTransaction(await negotiated(svc.address), {
          ...SPEC,
          body: Buffer.alloc(1100 * 1024, 'b'),
        }),
      ),
      /^552 5\.3\.4 /,
    )
    assert.equal(await metric(rt, 'linksec_milter_limits_total', { limit: 'held_bytes' }), 1)
    assert.equal(await metric(rt, 'linksec_milter_limits_total', { limit: 'message_bytes' }), 1)
    await a.quit()
    await b.quit()
  })

  it('large bodies (kept in shared blocks, read through the shared read buffer) reach the steps byte for byte, several at once', async () => {
    const { rt } = runtime({ max_held_bytes: String(64 * 1024 * 1024) })
    const seen = new Map<string, string>()
    const joined: Buffer[] = []
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex')
    const reader = messageStep(
      'reader',
      async (msg) => {
        const raw = await msg.message()
        joined.push(raw)
        const body = raw.subarray(raw.indexOf('\r\n\r\n') + 4)
        seen.set(msg.headerValues('subject')[0]!, digest(body))
        return { verdict: CONTINUE, headers: [] }
      },
      { needsBody: true },
    )
    const svc = await startMilterService(rt, {
      listen: 'inet:127.0.0.1:0',
      handler: createMilterApp(rt, { steps: [reader] }),
    })
    services.push(svc)
    // Sizes around the small-body bound and the block size, and two of over a megabyte.
    const sizes = [9, 65535, 65536, 65537, 200_001, 1_300_000, 2 * 1024 * 1024 + 3]
    const bodies = sizes.map((n, i) => {
      const b = Buffer.allocUnsafe(n)
      for (let j = 0; j < n; j++) b[j] = 0x21 + ((j * 7 + i) % 90)
      return b
    })
    const results = await Promise.all(
      bodies.map(async (body, i) => {
        const c = await negotiated(svc.address)
        const r = await runTransaction(c, { ...SPEC, headers: [['Subject', `m${i}`]], body })
        await c.quit()
        return r.final.type
      }),
    )
    assert.deepEqual(
      results,
      sizes.map(() => 'continue'),
    )
    for (const [i, body] of bodies.entries())
      assert.equal(seen.get(`m${i}`), digest(body), `body ${sizes[i]} bytes`)
    // A message of a megabyte or more is freed as its end of message is answered; a smaller one is left to the collector.
    for (const raw of joined) {
      const large = raw.byteLength === 0 || raw.buffer.byteLength >= 1024 * 1024
      if (large) assert.equal(raw.length, 0, 'a large joined message is released')
      else assert.ok(raw.length > 0, 'a small one is not')
    }
    assert.equal(joined.filter((r) => r.length === 0).length, 2)
  })

  it('keeps macros for known stages only, within max_macro_bytes (past it: 451 4.3.1)', async () => {
    const { rt } = runtime({ max_macro_bytes: '2048', max_held_bytes: String(1024 * 1024) })
    const svc = await start(rt)
    const c = await negotiated(svc.address)
    // 200 macro sets of 16 KB for command codes that are no stage: dropped, nothing held, nothing refused.
    for (let i = 0; i < 200; i++)
      c.queue({ type: 'macro', command: 0x01 + (i % 60), macros: [['{x}', 'x'.repeat(16 * 1024)]] })
    c.flush()
    assert.equal((await runTransaction(c, SPEC)).final.type, 'continue')
    await c.quit()
    const d = await negotiated(svc.address)
    d.queue({ type: 'macro', command: Cmd.connect, macros: [['{big}', 'm'.repeat(4096)]] })
    assert.match(text(await runTransaction(d, SPEC)), /^451 4\.3\.1 .*macros/)
    assert.equal(await metric(rt, 'linksec_milter_limits_total', { limit: 'macro_bytes' }), 1)
    d.destroy()
  })
})

describe('milter connection exhaustion', () => {
  it('closes a connection that does not negotiate in time', async () => {
    const { rt } = runtime({ negotiation_timeout_ms: '200' })
    const svc = await start(rt)
    const c = await MilterClient.connect(svc.address)
    await c.waitClosed()
    assert.equal(
      await metric(rt, 'linksec_milter_protocol_errors_total', { reason: 'negotiation_timeout' }),
      1,
    )
  })

  it('closes a peer that drips a frame one byte at a time', async () => {
    const { rt } = runtime({ frame_timeout_ms: '300' })
    const svc = await start(rt)
    const c = await negotiated(svc.address)
    const frame = encodeCommand({ type: 'helo', name: 'dripping.example' })
    for (let i = 0; i < frame.length - 1 && !c.closed; i++) {
      c.sendRaw(frame.subarray(i, i + 1))
      await new Promise((r) => setTimeout(r, 100))
    }
    await c.waitClosed()
    assert.equal(await metric(rt, 'linksec_milter_protocol_errors_total', { reason: 'frame_timeout' }), 1)
  })

  /** A session through DATA, then whole header frames every 100 ms until `until` says stop (at most 100). */
  async function drip(c: MilterClient, until: () => Promise<boolean>): Promise<void> {
    await c.event({ type: 'connect', host: 'drip.example', family: 'inet4', port: 1, address: '192.0.2.7' })
    await c.event({ type: 'helo', name: 'drip.example' })
    await c.event({ type: 'mail', args: ['<alice@example.org>'] })
    await c.event({ type: 'rcpt', args: ['<bob@example.net>'] })
    await c.event({ type: 'data' })
    for (let i = 0; i < 100 && !c.closed && !(await until()); i++) {
      c.sendRaw(encodeCommand({ type: 'header', name: `X-Drip-${i}`, value: 'v' }))
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  it('a peer dripping whole frames gets 451 4.4.2 at end of message past session_timeout_ms, counted, then closed', async () => {
    const { rt } = runtime({ session_timeout_ms: '1000', frame_timeout_ms: '5000' })
    const svc = await start(rt)
    const c = await negotiated(svc.address)
    const expired = async () =>
      (await metric(rt, 'linksec_milter_limits_total', { limit: 'session_time' })) > 0
    await drip(c, expired)
    assert.ok(await expired(), 'the deadline passed while the peer dripped')
    c.sendRaw(encodeCommand({ type: 'endOfMessage', chunk: Buffer.from('late body\r\n') }))
    const out = await c.untilFinal()
    const final = out.at(-1)
    assert.equal(final?.type, 'replyCode', JSON.stringify(out))
    assert.match(final.type === 'replyCode' ? final.text : '', /^451 4\.4\.2 .*session_timeout_ms.*try again/)
    await c.waitClosed()
    assert.equal(await metric(rt, 'linksec_milter_limits_total', { limit: 'session_time' }), 1)
    assert.equal(await metric(rt, 'linksec_milter_protocol_errors_total', { reason: 'session_timeout' }), 0)
  })

  it('a dripping peer that never reaches an awaited reply is closed frame_timeout_ms after the deadline', async () => {
    const { rt } = runtime({ session_timeout_ms: '1000', frame_timeout_ms: '300' })
    const svc = await start(rt)
    const c = await negotiated(svc.address)
    await drip(c, () => Promise.resolve(false))
    await c.waitClosed()
    assert.equal(await metric(rt, 'linksec_milter_limits_total', { limit: 'session_time' }), 1)
    assert.equal(await metric(rt, 'linksec_milter_protocol_errors_total', { reason: 'session_timeout' }), 1)
  })

  it('the deadline restarts at each end of message: a connection may carry many messages', async () => {
    const { rt } = runtime({ session_timeout_ms: '1500' })
    const svc = await start(rt)
    const c = await negotiated(svc.address)
    // Four messages 500 ms apart: together past the deadline, each well within it.
    assert.equal((await runTransaction(c, SPEC)).final.type, 'continue')
    for (let i = 1; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 500))
      // The next message on the same connection (Postfix: MAIL again after the previous end of message).
      await c.event({ type: 'mail', args: ['<alice@example.org>'] })
      await c.event({ type: 'rcpt', args: ['<bob@example.net>'] })
      await c.event({ type: 'data' })
      await c.event({ type: 'header', name: 'Subject', value: `message ${i}` })
      await c.event({ type: 'eoh' })
      await c.event({ type: 'body', chunk: Buffer.from('Hi.\r\n') })
      const out = (await c.event({ type: 'endOfMessage', chunk: Buffer.alloc(0) })).responses
      assert.equal(out.at(-1)?.type, 'continue', `message ${i}: ${JSON.stringify(out)}`)
    }
    assert.ok(!c.closed)
    await c.quit()
    assert.equal(await metric(rt, 'linksec_milter_limits_total', { limit: 'session_time' }), 0)
  })

  it('idle never-negotiated connections cannot lock a real session out; the refusals do not flood the log', async () => {
    const { rt, lines } = runtime({ max_sessions: '20' })
    const svc = await start(rt)
    const port = Number(svc.address.split(':')[2])
    const idle: net.Socket[] = []
    for (let i = 0; i < 60; i++) {
      const s = net.connect(port, '127.0.0.1')
      s.on('error', () => {})
      await new Promise((r) => s.once('connect', r))
      idle.push(s)
    }
    const c = await negotiated(svc.address)
    assert.equal((await runTransaction(c, SPEC)).final.type, 'continue')
    await c.quit()
    assert.ok(
      (await metric(rt, 'linksec_milter_protocol_errors_total', { reason: 'negotiation_timeout' })) >= 40,
    )
    const evictions = lines.filter((l) => l.includes('negotiation_timeout'))
    assert.ok(evictions.length <= 2, `${evictions.length} log lines for 40+ evictions`)
    for (const s of idle) s.destroy()
  })
})
