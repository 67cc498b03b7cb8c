/**
 * The milter's default pipeline (milter/policies/index.ts) over a loopback
 * DNS world: the route policy marks tagged mail for Postfix's strict
 * transports, refuses recipient domains known to be below the tag, and
 * answers 451 4.4.3 — never an accept — when a lookup fails. Every message
 * gives one decision line and one linksec_messages_total count.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../../../core/config'
import type { LogFields, Logger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime, type Runtime } from '../../../core/runtime'
import { addressDomain } from '../../../core/address'
import { MESSAGE_STEPS, messageStep } from '../../../core/message'
import { createMilterApp } from '../../../milter/app'
import { MacroStore } from '../../../milter/macros'
import type { EndOfMessageReply, SessionFacts, Transaction } from '../../../milter/session'
import { Cmd } from '../../../milter/wire/codes'
import { startWorld, type IniSections, type World } from '../../helpers/world'

interface Line {
  level: string
  msg: string
  fields: LogFields
}

function capturingLogger(lines: Line[]): Logger {
  const at =
    (level: string) =>
    (msg: string, fields: LogFields = {}) =>
      void lines.push({ level, msg, fields })
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

const STATIC_LIST = JSON.stringify({ policies: { 'weak.test': { mode: 'testing', level: 1 } } })

let world: World

before(async () => {
  world = await startWorld({
    zone: {
      '_linksec.strong.test': { TXT: ['v=LINKSEC1; level=4; ttl=3600'] },
      '_linksec.one.test': { TXT: ['v=LINKSEC1; level=1; ttl=3600'] },
      '_linksec.broken.test': { fault: 'servfail' },
    },
  })
})
after(() => world.close())

function runtime(extra: IniSections = {}): { rt: Runtime; lines: Line[] } {
  const lines: Line[] = []
  const dir = world.configIni(
    {
      main: { authserv_id: 'mx.example.net' },
      // Keys only from the (empty) local store: the signature check stays on the machine.
      keys: { methods: 'local' },
      resolver: { servers: [world.dns.address], timeout_ms: 1000 },
      ...extra,
    },
    { 'linksec.domains.json': STATIC_LIST },
  )
  const rt = createRuntime(loadConfig(dir), {
    log: capturingLogger(lines),
    metrics: createMetrics({ processMetrics: false }),
  })
  return { rt, lines }
}

function facts(o: { rcpts?: string[]; headers?: Array<[string, string]>; tls?: boolean } = {}): SessionFacts {
  const macros = new MacroStore()
  macros.set(
    Cmd.helo,
    o.tls === false
      ? []
      : [
          ['{tls_version}', 'TLSv1.3'],
          ['{cipher}', 'TLS_AES_256_GCM_SHA384'],
        ],
  )
  macros.set(Cmd.endOfMessage, [['i', 'Q7']])
  const transaction: Transaction = {
    sender: '<alice@Sender.test>',
    senderArgs: [],
    recipients: (o.rcpts ?? ['bob@strong.test']).map((a) => ({ address: `<${a}>`, args: [] })),
    headers: ([['From', 'alice@sender.test'], ['Subject', 'hi'], ...(o.headers ?? [])] as const).map(
      ([name, value]) => ({
        name,
        value,
      }),
    ),
    body: [Buffer.from('Hello.\r\n')],
    bodyBytes: 8,
    bodyTruncated: false,
  }
  return { id: 3, macros, helo: 'client.example.test', transaction }
}

const tag = (n: number): Array<[string, string]> => [['Link-Security-Required', String(n)]]

function routeHeaders(r: EndOfMessageReply): string[] {
  return r.modifications.flatMap((m) =>
    m.type === 'addHeader' && m.name === 'X-Linksec-Route' ? [m.value] : [],
  )
}

function finalText(r: EndOfMessageReply): string {
  return r.final.type === 'replyCode' ? r.final.text : r.final.type
}

async function metric(rt: Runtime, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await rt.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name)
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return v ? v.value : 0
}

const decisions = (lines: Line[]) => lines.filter((l) => l.msg === 'decision')

describe('milter default pipeline', () => {
  it('runs the inbound link first, then the Web Key Service, then the route policy, then the signature check, then signing', () => {
    assert.deepEqual(
      MESSAGE_STEPS.map((p) => p.name),
      ['inbound-link', 'wks', 'route', 'verify', 'sign'],
    )
  })

  it('marks a tagged message for the encrypt transport (N <= 3) and the secure one (N = 4)', async () => {
    const { rt } = runtime()
    const app = createMilterApp(rt)
    const three = await app.endOfMessage(facts({ headers: tag(3) }))
    assert.equal(three.final.type, 'continue', finalText(three))
    assert.deepEqual(routeHeaders(three), ['encrypt; level=3'])
    const four = await app.endOfMessage(facts({ headers: tag(4) }))
    assert.deepEqual(routeHeaders(four), ['secure; level=4'])
    assert.equal(await metric(rt, 'linksec_tagged_messages_total', { level: '4', outcome: 'routed' }), 1)
    assert.equal(await metric(rt, 'linksec_tagged_messages_total', { level: '4', outcome: 'accepted' }), 1)
  })

  it('gives untagged and TLS-Required: No mail no route header, and looks nothing up for it', async () => {
    const { rt } = runtime()
    const app = createMilterApp(rt)
    const before = world.dns.queries.filter((q) => q.name === '_linksec.untagged.test').length
    const plain = await app.endOfMessage(facts({ rcpts: ['bob@untagged.test'], tls: false }))
    assert.equal(plain.final.type, 'continue')
    assert.deepEqual(routeHeaders(plain), [])
    const waived = await app.endOfMessage(
      facts({ rcpts: ['bob@untagged.test'], headers: [...tag(4), ['TLS-Required', 'No']], tls: false }),
    )
    assert.equal(waived.final.type, 'continue', finalText(waived))
    assert.deepEqual(routeHeaders(waived), [])
    assert.equal(world.dns.queries.filter((q) => q.name === '_linksec.untagged.test').length, before)
  })

  it('routes a tagged message to a domain nothing is known of (the strict transport decides later)', async () => {
    const { rt } = runtime()
    const r = await createMilterApp(rt).endOfMessage(facts({ rcpts: ['bob@nothing.test'], headers: tag(2) }))
    assert.equal(r.final.type, 'continue', finalText(r))
    assert.deepEqual(routeHeaders(r), ['encrypt; level=2'])
  })

  it('refuses 550 5.7.10 naming the domains known below the tag, from DNS and the static list', async () => {
    const { rt, lines } = runtime()
    const r = await createMilterApp(rt).endOfMessage(
      facts({ rcpts: ['a@strong.test', 'b@one.test', 'c@weak.test'], headers: tag(3) }),
    )
    assert.match(
      finalText(r),
      /^550 5\.7\.10 this message is tagged Link-Security-Required: 3 but these recipient domains do not declare link-security level 3: one\.test \(level 1\), weak\.test \(level 1\)/,
    )
    assert.doesNotMatch(finalText(r), /strong\.test/)
    assert.deepEqual(routeHeaders(r), [])
    assert.equal(
      await metric(rt, 'linksec_tagged_messages_total', { level: '3', outcome: 'rejected_recipients' }),
      1,
    )
    const [line] = decisions(lines)
    assert.equal(line?.fields.reason, 'recipient_level_low')
    assert.equal(line?.fields.step, 'route')
  })

  it('answers 451 4.4.3, never an accept, when the lookup of a recipient domain fails', async () => {
    const { rt, lines } = runtime()
    const r = await createMilterApp(rt).endOfMessage(facts({ rcpts: ['bob@broken.test'], headers: tag(1) }))
    assert.match(finalText(r), /^451 4\.4\.3 could not look up the link-security level of broken\.test/)
    assert.deepEqual(routeHeaders(r), [])
    assert.equal(
      await metric(rt, 'linksec_tagged_messages_total', { level: '1', outcome: 'tempfail_recipients' }),
      1,
    )
    const warned = lines.find((l) => l.msg === 'recipient domain policy lookup failed')
    assert.equal(warned?.fields.domain, 'broken.test')
    assert.equal(decisions(lines)[0]?.level, 'warn', 'a tempfail decision is logged as a warning')
    // The same domain without a tag needs no lookup: it passes.
    const untagged = await createMilterApp(rt).endOfMessage(facts({ rcpts: ['bob@broken.test'] }))
    assert.equal(untagged.final.type, 'continue')
  })

  it('answers 451 4.4.3 when no DNS server may be asked at all (system resolver forbidden in tests)', async () => {
    assert.equal(process.env.LINKSEC_FORBID_SYSTEM_RESOLVER, '1', 'the loopback world forbids it')
    const { rt } = runtime({ resolver: { servers: '' } })
    const r = await createMilterApp(rt).endOfMessage(facts({ rcpts: ['bob@strong.test'], headers: tag(3) }))
    assert.match(finalText(r), /^451 4\.4\.3 /)
  })

  it('lets a domain the static list vouches for through when DNS sources are off', async () => {
    const { rt } = runtime({ policy: { txt: false, mta_sts: false, dane: false } })
    const app = createMilterApp(rt)
    const weak = await app.endOfMessage(facts({ rcpts: ['bob@weak.test'], headers: tag(1) }))
    assert.equal(weak.final.type, 'continue', finalText(weak))
    assert.deepEqual(routeHeaders(weak), ['encrypt; level=1'])
    const low = await app.endOfMessage(facts({ rcpts: ['bob@weak.test'], headers: tag(2) }))
    assert.match(finalText(low), /^550 5\.7\.10 .*weak\.test \(level 1\)/)
  })

  it('treats an address literal as a domain nothing is known of', async () => {
    const { rt } = runtime()
    const r = await createMilterApp(rt).endOfMessage(facts({ rcpts: ['bob@[192.0.2.1]'], headers: tag(3) }))
    assert.equal(r.final.type, 'continue', finalText(r))
    assert.deepEqual(routeHeaders(r), ['encrypt; level=3'])
  })
})

describe('milter decision line', () => {
  it('logs one line per message with the fields both adapters share, and counts it once', async () => {
    const { rt, lines } = runtime()
    await createMilterApp(rt).endOfMessage(facts({ headers: tag(3) }))
    const [line, ...more] = decisions(lines)
    assert.equal(more.length, 0)
    assert.equal(line?.level, 'info')
    assert.deepEqual(
      { ...line?.fields },
      {
        adapter: 'milter',
        queue_id: 'Q7',
        verdict: 'continue',
        reason: 'ok',
        link_level: 3,
        sender_domain: 'sender.test',
        session: 3,
        tls: 'TLSv1.3',
      },
    )
    assert.equal(await metric(rt, 'linksec_messages_total', { adapter: 'milter', verdict: 'continue' }), 1)
  })

  it('names the reply, the reason and the deciding policy of a refusal', async () => {
    const { rt, lines } = runtime()
    await createMilterApp(rt).endOfMessage(facts({ headers: tag(3), tls: false }))
    const [line] = decisions(lines)
    assert.equal(line?.fields.verdict, 'reject')
    assert.equal(line?.fields.code, 550)
    assert.equal(line?.fields.enhanced, '5.7.10')
    assert.equal(line?.fields.reason, 'tagged_plaintext')
    assert.equal(line?.fields.step, 'inbound-link')
    assert.equal(line?.fields.tls, 'none')
    assert.equal(await metric(rt, 'linksec_messages_total', { adapter: 'milter', verdict: 'reject' }), 1)
  })

  it('logs and counts a message whose policies ran past the deadline as one tempfail', async () => {
    const { rt, lines } = runtime()
    const slow = messageStep('slow', () => new Promise(() => {}))
    const r = await createMilterApp(rt, { steps: [slow], deadlineMs: 20 }).endOfMessage(facts())
    assert.match(finalText(r), /^451 4\.3\.0 /)
    const all = decisions(lines)
    assert.equal(all.length, 1)
    assert.equal(all[0]?.fields.verdict, 'tempfail')
    assert.equal(all[0]?.fields.queue_id, 'Q7')
    assert.equal(await metric(rt, 'linksec_messages_total', { adapter: 'milter', verdict: 'tempfail' }), 1)
    assert.equal(await metric(rt, 'linksec_messages_total', { adapter: 'milter', verdict: 'continue' }), 0)
  })

  it('reads the sender domain from the envelope', () => {
    assert.equal(addressDomain('<Alice@Example.ORG>'), 'example.org')
    assert.equal(addressDomain('alice@example.org'), 'example.org')
    assert.equal(addressDomain('<>'), undefined)
    assert.equal(addressDomain('<postmaster>'), undefined)
  })
})
