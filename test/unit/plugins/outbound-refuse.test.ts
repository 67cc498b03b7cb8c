/**
 * The Haraka side of a refused tagged message, on a fake HMailItem: the
 * bounce carries linksec's DSN (Haraka's own builder only when ours cannot
 * be made), and each refused hop is one log line with the decision fields.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { createMetrics } from '../../../core/metrics'
import { createRuntime, type Runtime } from '../../../core/runtime'
import { parseConfig } from '../../../core/config'
import { FULL_ENFORCEMENT, type LinkFacts } from '../../../core/enforce'
import { NO_REQUIREMENT, type Requirement } from '../../../core/levels'
import type { LogFields } from '../../../core/log'
import { logRefusal, prepareAttempt, type HopRefusalAt } from '../../../plugins/outbound/attempt'
import type { HMailItem, HarakaTodo } from '../../../plugins/outbound/hmail'
import { refuseMessage, type HarakaOutbound } from '../../../plugins/outbound/refuse'
import { parseDsn } from '../../helpers/dsn'

const ORIGINAL =
  'Subject: figures\r\nMessage-ID: <m1@sender.test>\r\nLink-Security-Required: 3\r\n\r\nsecret\r\n'

/** Stands in for Haraka's HMailItem prototype: records what linksec asks of it. */
class FakeHMail {
  calls: string[] = []
  num_failures = 0
  filename = 'q1'
  todo: HarakaTodo = {
    domain: 'plain.test',
    mail_from: { address: 'alice@sender.test', host: 'sender.test' },
    rcpt_to: [{ address: 'bob@plain.test' }],
    notes: {},
    queue_time: Date.parse('2026-12-03T10:00:00Z'),
    uuid: 'UUID-1.1',
  }
  constructor(private readonly body: string | Error) {}
  get_force_tls() {
    return false
  }
  try_deliver_host_on_socket() {}
  temp_fail(err: string) {
    this.calls.push(`temp_fail ${err}`)
  }
  bounce(err: string) {
    this.calls.push(`bounce ${err}`)
  }
  populate_bounce_message(
    _f: unknown,
    _t: unknown,
    _r: unknown,
    cb: (e: Error | null, l?: string[]) => void,
  ) {
    this.calls.push('haraka populate_bounce_message')
    cb(null, ['haraka bounce'])
  }
  discard() {
    this.calls.push('discard')
  }
  data_stream(): NodeJS.ReadableStream {
    const body = this.body
    if (body instanceof Error)
      return new Readable({
        read() {
          this.destroy(body)
        },
      })
    return Readable.from([Buffer.from(body.slice(0, 20)), Buffer.from(body.slice(20))])
  }
  logdebug(...a: unknown[]) {
    this.calls.push(`debug ${a.join(' ')}`)
  }
  loginfo() {}
  logwarn() {}
  logerror(...a: unknown[]) {
    this.calls.push(`error ${a.join(' ')}`)
  }
}

function runtime(lines: { level: string; msg: string; fields?: LogFields }[] = []): Runtime {
  const cfg = parseConfig({ main: { authserv_id: 'mx.test' } }, '/tmp')
  const log = Object.fromEntries(
    ['debug', 'info', 'warn', 'error'].map((level) => [
      level,
      (msg: string, fields?: LogFields) => lines.push({ level, msg, fields }),
    ]),
  ) as unknown as Runtime['log']
  return createRuntime(cfg, { metrics: createMetrics({ processMetrics: false }), log })
}

const LEVEL3: Requirement = { ...NO_REQUIREMENT, level: 3, requireTls: true, source: 'header' }
const FACTS: LinkFacts = {
  hop: 'mx.plain.test [192.0.2.25]:25',
  tls: false,
  offersStartTls: false,
  certVerified: false,
  offersRequireTls: false,
}
const REFUSAL: HopRefusalAt = {
  action: 'bounce',
  code: 550,
  enhanced: '5.7.10',
  text: 'this message (Link-Security-Required: 3) was not sent: the receiving server mx.plain.test [192.0.2.25]:25 does not offer STARTTLS',
  reason: 'no_starttls',
  hop: FACTS.hop,
  mta: 'mx.plain.test',
  declared: { source: 'none' },
}
const OUTBOUND: HarakaOutbound = {
  send_email: () => assert.fail('no fallback is configured'),
  net_utils: { get_primary_host_name: () => 'mx.sender.test' },
}

function prepared(rt: Runtime, body: string | Error): HMailItem & FakeHMail {
  const hmail = Object.create(new FakeHMail(body)) as HMailItem & FakeHMail
  hmail.calls = []
  prepareAttempt(
    rt,
    hmail,
    {
      req: LEVEL3,
      policy: { domain: 'plain.test', tlsRequired: false, certificateRequired: false, mxPatterns: [] },
      enforcement: FULL_ENFORCEMENT,
      probes: [],
      deferredForTls: false,
      windowEndsAt: 0,
    },
    { refuse: () => undefined },
  )
  return hmail
}

function populate(hmail: HMailItem): Promise<string[]> {
  return new Promise((resolve, reject) =>
    hmail.populate_bounce_message('<>', 'alice@sender.test', 'x', (e, lines) =>
      e ? reject(e) : resolve(lines!),
    ),
  )
}

describe('refuseMessage (Haraka outbound)', () => {
  it("bounces through Haraka with linksec's DSN in place of Haraka's template", async () => {
    const rt = runtime()
    const hmail = prepared(rt, ORIGINAL)
    refuseMessage(rt, hmail, [REFUSAL], OUTBOUND)
    assert.deepEqual(hmail.calls, [`bounce ${REFUSAL.text}`])
    assert.equal(hmail.todo.rcpt_to[0]!.dsn_status, '5.7.10')
    const lines = await populate(hmail)
    assert.equal(lines.length, 1)
    const dsn = parseDsn(lines[0]!)
    assert.ok(dsn)
    assert.match(lines[0]!, /^From: Mail Delivery System <postmaster@mx\.sender\.test>\r$/m)
    assert.match(lines[0]!, /^Subject: Undelivered: figures\r$/m)
    assert.equal(dsn.recipients[0]!.status, '5.7.10')
    assert.equal(dsn.recipients[0]!.remoteMta, 'dns; mx.plain.test')
    assert.match(dsn.originalHeaders, /^Message-ID: <m1@sender\.test>/m)
    assert.doesNotMatch(lines[0]!, /secret/)
    assert.ok(!hmail.calls.includes('haraka populate_bounce_message'))
  })

  it("falls back to Haraka's own bounce when the queued message cannot be read", async () => {
    const lines: { level: string; msg: string }[] = []
    const rt = runtime(lines)
    const hmail = prepared(rt, new Error('EIO'))
    refuseMessage(rt, hmail, [REFUSAL], OUTBOUND)
    assert.deepEqual(await populate(hmail), ['haraka bounce'])
    assert.ok(hmail.calls.includes('haraka populate_bounce_message'))
    assert.ok(lines.some((l) => l.level === 'warn' && /could not build the DSN/.test(l.msg)))
  })
})

describe('hop refusal log lines', () => {
  it('a final refusal is INFO, a retry WARN, each with the decision fields', () => {
    const lines: { level: string; msg: string; fields?: LogFields }[] = []
    const rt = runtime(lines)
    const hmail = prepared(rt, ORIGINAL)
    logRefusal(rt, hmail, REFUSAL, FACTS)
    logRefusal(
      rt,
      hmail,
      { ...REFUSAL, action: 'retry', code: 451, enhanced: '4.7.10', reason: 'cert_unverified' },
      { ...FACTS, tls: true, certError: 'DEPTH_ZERO_SELF_SIGNED_CERT' },
    )
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg]),
      [
        ['info', 'linksec: hop refused'],
        ['warn', 'linksec: hop refused'],
      ],
    )
    assert.deepEqual(lines[0]!.fields, {
      adapter: 'haraka',
      queue_id: 'UUID-1.1',
      verdict: 'reject',
      reason: 'no_starttls',
      code: 550,
      enhanced: '5.7.10',
      link_level: 3,
      sender_domain: 'sender.test',
      stage: 'hop',
      hop: FACTS.hop,
      domain: 'plain.test',
      outcome: 'bounce',
    })
    assert.equal(lines[1]!.fields!.verdict, 'tempfail')
    assert.equal(lines[1]!.fields!.cert_error, 'DEPTH_ZERO_SELF_SIGNED_CERT')
  })

  it("turns Haraka's ERROR for a session linksec ended into a debug line, and only that one", () => {
    const rt = runtime()
    const hmail = prepared(rt, ORIGINAL)
    hmail.logerror(
      `Ongoing connection failed to 127.0.0.1:25 : Error: linksec refused ${FACTS.hop}: no_starttls`,
    )
    hmail.logerror('Ongoing connection failed to 127.0.0.1:25 : Error: read ECONNRESET')
    assert.deepEqual(
      hmail.calls.map((c) => c.split(' ')[0]),
      ['debug', 'error'],
    )
  })
})
