/**
 * Issue 17 on a stock install: a fresh `haraka -i` directory with linksec
 * and no config/outbound.bounce_message (the harness checks there is none).
 * A real Haraka relays tagged messages to real receivers on loopback
 * (test/helpers/receivers.ts); next hops are pinned, nothing is looked up.
 *
 * - `Link-Security-Required: 3` to a server without STARTTLS, and to one
 *   with STARTTLS that declares no level: the DSN the sender gets, parsed,
 *   has From, To, Subject, a text naming the message, hop and reason, a
 *   Diagnostic-Code, Status 5.7.10 and the original headers; each refused
 *   hop is an INFO line with the decision fields, never Haraka's ERROR.
 * - `Link-Security-Required: 3` to a self-signed server whose level 3 comes
 *   from the static list: delivered over TLS, and Haraka's log says
 *   `verified=false` with the error, beside linksec's line naming the rule.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { needTools } from '../helpers/tools'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import {
  PINNED_MX_PLUGIN,
  pinnedMxIni,
  startReceivers,
  stopReceivers,
  submit,
  type Receiver,
  type ReceiverKind,
} from '../helpers/receivers'
import { parseDsn } from '../helpers/dsn'

const SENDER = 'alice@sender.test'

function message(id: string, to: string): string {
  return [
    `From: Alice <${SENDER}>`,
    `To: <${to}>`,
    `Subject: ${id} quarterly figures`,
    `Message-ID: <${id}@sender.test>`,
    'Date: Thu, 03 Dec 2026 10:00:00 +0000',
    'Link-Security-Required: 3',
    '',
    `the secret body of ${id}`,
    '',
  ].join('\r\n')
}

/** The top-level header NAME of a message, unfolded. */
function topHeader(raw: string, name: string): string | undefined {
  const head = raw.slice(0, raw.search(/\r?\n\r?\n/)).replace(/\r?\n[ \t]+/g, ' ')
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(head)?.[1]?.trim()
}

/** Haraka log lines matching every pattern. */
function logLines(log: string, ...patterns: RegExp[]): string[] {
  return log.split('\n').filter((l) => patterns.every((p) => p.test(l)))
}

async function until<T>(what: string, probe: () => T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = probe()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe('Haraka bounces and logs on a stock install (no bounce template)', { timeout: 180_000 }, () => {
  let receivers: Record<ReceiverKind, Receiver> | undefined
  let sender: HarakaInstance | undefined

  before(async () => {
    receivers = await startReceivers(['plain', 'tls', 'dsn'])
    sender = await startHaraka({
      bounceTemplate: 'none',
      plugins: ['tls', 'linksec', 'test_relay', 'pinned_mx'],
      localPlugins: { pinned_mx: PINNED_MX_PLUGIN },
      config: {
        // tls3.test: the self-signed receiver again, its level 3 from the static list.
        'pinned_mx.ini': `${pinnedMxIni(receivers)}tls3.test=mx.tls3.test:127.0.0.1:${receivers.tls.haraka.port}\n`,
        'outbound.ini': 'local_mx_ok=true\ntemp_fail_intervals=5s\n',
        'linksec.domains.json': JSON.stringify({ policies: { 'tls3.test': { mode: 'testing', level: 3 } } }),
      },
      linksec: {
        main: { level: 4, mailboxes_tls_only: true },
        enforce: { tls_retry_window: 0 },
        policy: { txt: false, mta_sts: false, dane: false },
      },
    })
  })

  after(async () => {
    await sender?.stop()
    await stopReceivers(receivers)
  })

  it('the sender gets a DSN a person can read, and the refused hops are INFO lines', async (t) => {
    if (!needTools(t, { openssl: 'openssl' })) return
    for (const [id, to] of [
      ['bnc-plain', 'bob@plain.test'],
      ['bnc-tls', 'bob@tls.test'],
    ]) {
      const r = await submit({ port: sender!.port, from: SENDER, to: [to!], data: message(id!, to!) })
      assert.ok(r.accepted, `${id}: ${r.reply}`)
    }
    const dsnFor = (id: string) =>
      receivers!.dsn.got().find((m) => parseDsn(m.raw)?.originalHeaders.includes(`Subject: ${id} `))
    const cases = [
      { id: 'bnc-plain', hop: 'mx.plain.test', why: /does not offer an encrypted connection \(STARTTLS\)/ },
      {
        id: 'bnc-tls',
        hop: 'mx.tls.test',
        why: /declares no link-security level; your message requires level 3 or more/,
      },
    ]
    for (const c of cases) {
      const got = await until(`the DSN for ${c.id}`, () => dsnFor(c.id)).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n${sender!.log().slice(-5000)}`)
      })
      // Haraka sends bounces from the null reverse path, to the sender.
      assert.equal(got.mailFrom, '')
      assert.deepEqual(got.rcptTo, [SENDER])
      assert.equal(topHeader(got.raw, 'From'), 'Mail Delivery System <postmaster@mx.linksec.test>')
      assert.equal(topHeader(got.raw, 'To'), `<${SENDER}>`)
      assert.equal(topHeader(got.raw, 'Subject'), `Undelivered: ${c.id} quarterly figures`)
      assert.match(
        topHeader(got.raw, 'Content-Type') ?? '',
        /^multipart\/report; report-type=delivery-status;/,
      )
      const dsn = parseDsn(got.raw)
      assert.ok(dsn, `${c.id}: a delivery report`)
      const text = dsn.humanText.replace(/\s+/g, ' ')
      assert.ok(text.includes(`Message-ID: <${c.id}@sender.test>`), `${c.id}: names the message: ${text}`)
      assert.match(text, new RegExp(`To: bob@${c.hop.slice(3).replace('.', '\\.')}`))
      assert.ok(text.includes(`${c.hop} [127.0.0.1]:`), `${c.id}: names the hop: ${text}`)
      assert.match(text, c.why)
      assert.match(text, /send it again without the "Link-Security-Required: 3" header/)
      assert.match(text, /Link-Security-Fallback: yes/)
      const rcpt = dsn.recipients[0]
      assert.ok(rcpt)
      assert.equal(rcpt.action, 'failed')
      assert.equal(rcpt.status, '5.7.10')
      assert.equal(rcpt.remoteMta, `dns; ${c.hop}`)
      assert.match(got.raw, /^Status: 5\.7\.10\r$/m)
      assert.match(got.raw, /^Diagnostic-Code: X-Linksec; message \(Link-Security-Required: 3\) not sent:/m)
      assert.match(rcpt.detail, c.why)
      assert.match(dsn.originalHeaders, new RegExp(`^Message-ID: <${c.id}@sender\\.test>`, 'm'))
      assert.doesNotMatch(got.raw, /the secret body/)
      t.diagnostic(`${c.id} DSN human text:\n${dsn.humanText}`)
    }
    assert.equal(receivers!.plain.got().length + receivers!.tls.got().length, 0, 'nothing was delivered')

    const log = sender!.log()
    for (const [reason, hop] of [
      ['no_starttls', 'mx.plain.test'],
      ['peer_level_unknown', 'mx.tls.test'],
    ] as const) {
      const lines = logLines(log, /linksec: hop refused/, new RegExp(`reason=${reason}\\b`))
      assert.equal(lines.length, 1, `one line for the ${reason} refusal:\n${log.slice(-5000)}`)
      const line = lines[0]!
      t.diagnostic(`refused hop: ${line}`)
      assert.match(line, /\[INFO\]/)
      for (const field of [
        'adapter=haraka',
        'verdict=reject',
        'code=550',
        'enhanced=5.7.10',
        'link_level=3',
        'sender_domain=sender.test',
        'stage=hop',
        'outcome=bounce',
      ])
        assert.ok(line.includes(field), `${reason}: ${field} in ${line}`)
      assert.ok(line.includes(hop), line)
    }
    // Haraka's ERROR for the session linksec ended is gone; ERROR is for real failures.
    assert.deepEqual(logLines(log, /\[ERROR\]/, /linksec refused|peer_level_unknown|no_starttls/), [])
  })

  it('a self-signed hop the rule accepts: Haraka logs verified=false, linksec logs the rule', async (t) => {
    if (!needTools(t, { openssl: 'openssl' })) return
    const r = await submit({
      port: sender!.port,
      from: SENDER,
      to: ['bob@tls3.test'],
      data: message('acc-selfsigned', 'bob@tls3.test'),
    })
    assert.ok(r.accepted, r.reply)
    const got = await until('delivery to the self-signed receiver', () =>
      receivers!.tls.got().find((m) => m.raw.includes('Subject: acc-selfsigned ')),
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n${sender!.log().slice(-5000)}`)
    })
    assert.match(got.raw, /with ESMTPS/, 'delivered over TLS')
    const log = sender!.log()
    const rule = logLines(log, /linksec: certificate not verified, not required/, /mx\.tls3\.test/)
    assert.equal(rule.length, 1, log.slice(-5000))
    t.diagnostic(`linksec: ${rule[0]}`)
    assert.match(rule[0]!, /cert_error=DEPTH_ZERO_SELF_SIGNED_CERT/)
    assert.match(rule[0]!, /rule="Link-Security-Required: 3 needs TLS, not a verified certificate"/)
    assert.match(rule[0]!, /link_level=3/)
    // Haraka's own line for the same delivery (its log prefix carries the queue id).
    const queueId = /queue_id=(\S+)/.exec(rule[0]!)?.[1]
    assert.ok(queueId)
    const secured = logLines(log, /\bsecured\b/, new RegExp(`\\[${queueId.replace(/\./g, '\\.')}\\]`))
    assert.equal(secured.length, 1, `Haraka logged the handshake once:\n${log.slice(-5000)}`)
    t.diagnostic(`Haraka: ${secured[0]}`)
    assert.match(secured[0]!, /verified=false/, 'Haraka is told the truth')
    assert.match(secured[0]!, /error=DEPTH_ZERO_SELF_SIGNED_CERT/)
    assert.deepEqual(logLines(log, /verified=true/, /DEPTH_ZERO_SELF_SIGNED_CERT/), [])
  })
})
