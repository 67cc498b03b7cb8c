/**
 * Issue 4 on Postfix 3.7, end to end: a private Postfix configured with the
 * shipped examples/postfix files (only ports and paths substituted) and
 * `linksec serve` as its milter and TLS-policy socketmap relays to three
 * real receivers — plaintext only; TLS without a LINKSEC declaration; TLS
 * with LINKSEC 4 and a test-CA certificate — and every row of the table is
 * asserted from what each receiver got, from Postfix's log (which transport
 * carried it) and from the parsed bounce that came back to the sender.
 *
 * Where Postfix cannot express what the Haraka adapter does
 * (test/integration/outbound-haraka.test.ts), the table says what Postfix
 * does instead:
 * - it cannot read a peer's EHLO `LINKSEC`, so tagged 1..3 mail goes to any
 *   server that offers STARTTLS (Haraka bounces it at tls.test, which
 *   declares nothing); levels come only from DNS/static lists, checked at
 *   end of message;
 * - its strict transports defer, and the message is returned when
 *   maximal_queue_lifetime runs out, with Postfix's own TLS status (4.7.x
 *   in an "Action: failed" report), not 5.7.10;
 * - it refuses `MAIL FROM:<…> REQUIRETLS` itself (555) before the milter;
 * - it cannot deliver only a part marked Link-Security-Fallback: the whole
 *   message is returned.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { parseDsn, type ParsedDsn } from '../helpers/dsn'
import { AUTHSERV, queueListing, startEnforcePostfix, type EnforcePostfix } from '../helpers/enforce-postfix'
import type { QueuedMessage } from '../helpers/haraka'
import { privateHostsSupported } from '../helpers/postfix-hosts'
import { submit, type ReceiverKind } from '../helpers/receivers'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'
import { taggedMessage } from '../helpers/tagged-message'

type Target = Exclude<ReceiverKind, 'dsn'>
type Expect = 'plain' | 'tls' | 'bounce'
const TARGETS: Target[] = ['plain', 'tls', 'level4']

interface Row {
  name: string
  headers: string[]
  fallbackPart?: boolean
  /** The strict transport the milter's route header selects, if any, and the level it names. */
  transport?: 'linksec-encrypt' | 'linksec-secure'
  level?: number
  expect: Record<Target, Expect>
}

const tagged = (n: number, expect: Record<Target, Expect>): Row => ({
  name: `level${n}`,
  headers: [`Link-Security-Required: ${n}`],
  transport: n === 4 ? 'linksec-secure' : 'linksec-encrypt',
  level: n,
  expect,
})

const TABLE: Row[] = [
  { name: 'untagged', headers: [], expect: { plain: 'plain', tls: 'tls', level4: 'tls' } },
  // Postfix cannot read EHLO LINKSEC: TLS is all it can demand of a server that declares nothing.
  tagged(1, { plain: 'bounce', tls: 'tls', level4: 'tls' }),
  tagged(2, { plain: 'bounce', tls: 'tls', level4: 'tls' }),
  tagged(3, { plain: 'bounce', tls: 'tls', level4: 'tls' }),
  tagged(4, { plain: 'bounce', tls: 'bounce', level4: 'tls' }),
  {
    name: 'tlsrequiredno',
    headers: ['Link-Security-Required: 4', 'TLS-Required: No'],
    expect: { plain: 'plain', tls: 'tls', level4: 'tls' },
  },
  // Postfix has no per-part delivery: the fallback part cannot go alone, the whole message comes back.
  { ...tagged(4, { plain: 'bounce', tls: 'bounce', level4: 'tls' }), name: 'fallback', fallbackPart: true },
]

/** What Postfix's strict transports say when they refuse a hop (its words, in the bounce). */
const REFUSAL: Record<Target, RegExp> = {
  plain: /TLS is required, but was not offered by host plain\.test\[/,
  tls: /Server certificate not verified/,
  level4: /^$/,
}

const caseId = (row: Row, target: Target) => `pfx-${row.name}-${target}`

const message = taggedMessage

const queueIdOf = (reply: string) => /queued as ([0-9A-Za-z]+)/.exec(reply)?.[1]

describe('Postfix no-downgrade table with the shipped example configuration', { timeout: 240_000 }, () => {
  let env: EnforcePostfix | undefined
  const queueIds = new Map<string, string>()
  const outcome = new Map<string, { got?: QueuedMessage; dsn?: ParsedDsn }>()

  before(async () => {
    if (!which('postfix') || !which('swaks') || !isRoot() || !privateHostsSupported()) return
    env = await startEnforcePostfix()
  })
  after(async () => {
    await env?.stop()
  })

  const ready = (t: Parameters<typeof needTools>[0]): boolean => {
    if (!needTools(t, { postfix: 'postfix', postconf: 'postfix', openssl: 'openssl', unshare: 'util-linux' }))
      return false
    if (!needRoot(t, 'postfix start needs root')) return false
    // Postfix must resolve the test domains itself (FILTER with an empty next hop): a private /etc/hosts.
    if (!privateHostsSupported()) {
      if (process.env.CI) throw new Error('unshare --mount with a bind mount is not permitted here')
      t.skip('needs a private mount namespace (unshare --mount, CAP_SYS_ADMIN)')
      return false
    }
    assert.ok(env, 'peers did not start')
    return true
  }

  const send = (to: string[], data: string, mailParams: string[] = []) =>
    submit({ port: env!.pf.port, from: 'alice@sender.test', to, data, mailParams })

  it('accepts every row for every receiver over STARTTLS', async (t) => {
    if (!ready(t)) return
    for (const row of TABLE) {
      for (const target of TARGETS) {
        const id = caseId(row, target)
        const to = `bob@${env!.receivers[target].domain}`
        const r = await send([to], message(id, row, to))
        assert.match(r.reply, /^250 /, `${id}: ${r.reply}`)
        queueIds.set(id, queueIdOf(r.reply)!)
      }
    }
  })

  it('refuses at end of data a tagged message for a domain known to be below its level, naming it', async (t) => {
    if (!ready(t)) return
    const mixed = await send(
      ['bob@level4.test', 'carol@weak.test'],
      'Subject: pfx-eom-static\r\nLink-Security-Required: 3\r\n\r\nsecret\r\n',
    )
    assert.match(
      mixed.reply,
      /^550 5\.7\.10 this message is tagged Link-Security-Required: 3 but this recipient domain does not declare link-security level 3: weak\.test \(level 1\)/,
    )
    assert.doesNotMatch(mixed.reply, /level4\.test/)
    const dns = await send(
      ['dave@low.test'],
      'Subject: pfx-eom-dns\r\nLink-Security-Required: 3\r\n\r\nsecret\r\n',
    )
    assert.match(dns.reply, /^550 5\.7\.10 .*: low\.test \(level 2\)/)
    // The same domain meets a lower tag: accepted, and routed to the encrypt transport.
    const enough = await send(
      ['dave@low.test'],
      'Subject: pfx-eom-enough\r\nLink-Security-Required: 2\r\n\r\nhi\r\n',
    )
    assert.match(enough.reply, /^250 /)
    queueIds.set('pfx-eom-enough', queueIdOf(enough.reply)!)
    const untagged = await send(['carol@weak.test'], 'Subject: pfx-eom-untagged\r\n\r\nhello\r\n')
    assert.match(untagged.reply, /^250 /)
    queueIds.set('pfx-eom-untagged', queueIdOf(untagged.reply)!)
    const lines = env!.decisions().filter((d) => d.reason === 'recipient_level_low')
    assert.equal(lines.length, 2, 'one decision line per refused message')
    for (const d of lines) {
      assert.equal(d.adapter, 'milter')
      assert.equal(d.verdict, 'reject')
      assert.equal(d.sender_domain, 'sender.test')
      assert.equal(d.link_level, 3)
    }
  })

  it('cannot take REQUIRETLS: Postfix 3.7 refuses the MAIL parameter before the milter sees it', async (t) => {
    if (!ready(t)) return
    const r = await send(['bob@level4.test'], 'Subject: pfx-requiretls\r\n\r\nhi\r\n', ['REQUIRETLS'])
    assert.match(r.reply, /^555 5\.5\.4 .*REQUIRETLS/i)
  })

  it('every row ends where the table says', async (t) => {
    if (!ready(t)) return
    const ids = [
      ...TABLE.flatMap((row) => TARGETS.map((target) => caseId(row, target))),
      'pfx-eom-untagged',
      'pfx-eom-enough',
    ]
    const deadline = Date.now() + 120_000
    while (ids.some((id) => !outcome.has(id)) && Date.now() < deadline) {
      collect(env!, outcome)
      await new Promise((r) => setTimeout(r, 500))
    }
    const missing = ids.filter((id) => !outcome.has(id))
    assert.deepEqual(
      missing,
      [],
      `no outcome for ${missing.join(', ')}\n${whatPostfixSaid(env!.pf.maillog(), missing, queueIds)}\n${queueListing(env!.pf)}`,
    )
    for (const row of TABLE)
      for (const target of TARGETS) checkCase(env!, row, target, outcome.get(caseId(row, target))!, queueIds)
  })

  it('never sends a domain whose policy requires TLS mail in the clear, tagged or not', async (t) => {
    if (!ready(t)) return
    // weak.test: static list level 1, so the socketmap answers "encrypt"; its server offers no STARTTLS.
    const o = outcome.get('pfx-eom-untagged')
    assert.equal(o?.got, undefined, 'not delivered in plaintext')
    assert.match(
      o?.dsn?.recipients[0]?.detail ?? '',
      /TLS is required, but was not offered by host weak\.test\[/,
    )
    // low.test (level 2) took the level-2 message at end of data; its server (plaintext) cannot have it.
    const low = outcome.get('pfx-eom-enough')
    assert.equal(low?.got, undefined)
    assert.match(
      low?.dsn?.recipients[0]?.detail ?? '',
      /TLS is required, but was not offered by host low\.test\[/,
    )
    assert.match(
      env!.pf.maillog(),
      new RegExp(
        `postfix/linksec-encrypt/smtp\\[\\d+\\]: ${queueIds.get('pfx-eom-enough')}: to=<dave@low\\.test>`,
      ),
    )
  })

  it('logs one milter decision per tagged message at info, carrying the queue id Postfix gave it; routine untagged mail at debug', async (t) => {
    if (!ready(t)) return
    const byQueueId = new Map(env!.decisions().map((d) => [d.queue_id, d]))
    for (const [id, qid] of queueIds) {
      const d = byQueueId.get(qid)
      // [log] decisions = notable (the default): an untagged message that goes on is routine.
      if (id.includes('untagged')) {
        assert.equal(d, undefined, `${id}: no info line for routine mail`)
        continue
      }
      assert.ok(d, `${id}: a decision line for ${qid}`)
      assert.equal(d.adapter, 'milter')
      assert.equal(d.verdict, 'continue')
      assert.equal(d.sender_domain, 'sender.test')
      assert.ok(d.link_level !== undefined, `${id}: the line names the level the tag asked for`)
    }
  })
})

/** The maillog lines of these cases' queue ids, and of the bounces Postfix made of them. */
function whatPostfixSaid(log: string, ids: string[], queueIds: Map<string, string>): string {
  const qids = ids.map((id) => queueIds.get(id)).filter((q): q is string => Boolean(q))
  const bounces = qids.flatMap((q) =>
    [...log.matchAll(new RegExp(`${q}: sender non-delivery notification: (\\w+)`, 'g'))].map((m) => m[1]!),
  )
  return log
    .split('\n')
    .filter((l) => [...qids, ...bounces].some((q) => l.includes(`${q}:`)))
    .join('\n')
}

/** Files each receiver's and the sender's bounce sink's messages under their case id. */
function collect(env: EnforcePostfix, out: Map<string, { got?: QueuedMessage; dsn?: ParsedDsn }>): void {
  for (const kind of TARGETS) {
    for (const m of env.receivers[kind].got()) {
      const id = /^Subject: (pfx-\S+)/m.exec(m.raw)?.[1]
      if (id) out.set(id, { ...out.get(id), got: m })
    }
  }
  for (const m of env.receivers.dsn.got()) {
    const dsn = parseDsn(m.raw)
    const id = dsn && /^Subject: (pfx-\S+)/m.exec(dsn.originalHeaders)?.[1]
    if (id) out.set(id, { ...out.get(id), dsn })
  }
}

function headerValues(raw: string, name: string): string[] {
  const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ')
  return [...head.matchAll(new RegExp(`^${name}:[ \\t]*(.*)$`, 'gim'))].map((m) => m[1]!.trim())
}

function checkCase(
  env: EnforcePostfix,
  row: Row,
  target: Target,
  o: { got?: QueuedMessage; dsn?: ParsedDsn },
  queueIds: Map<string, string>,
): void {
  const id = caseId(row, target)
  const qid = queueIds.get(id)!
  const domain = env.receivers[target].domain.replace(/\./g, '\\.')
  const via = row.transport ? `${row.transport}/smtp` : 'smtp'
  const log = env.pf.maillog()
  if (row.expect[target] === 'bounce') {
    assert.equal(o.got, undefined, `${id}: must not reach ${target}`)
    const rcpt = o.dsn?.recipients[0]
    assert.ok(rcpt, `${id}: a bounce must come back`)
    assert.equal(rcpt.action, 'failed', id)
    assert.equal(rcpt.finalRecipient, `bob@${env.receivers[target].domain}`, id)
    assert.match(rcpt.detail, REFUSAL[target], `${id}: ${rcpt.detail}`)
    // Postfix wraps the text a person reads; it names the recipient and says why.
    const human = o.dsn!.humanText.replace(/\s+/g, ' ')
    assert.match(human, REFUSAL[target], `${id}: ${human}`)
    assert.ok(human.includes(`<bob@${env.receivers[target].domain}>:`), id)
    // Deferred by the strict transport, then returned when the queue lifetime ran out, with the
    // status of the last deferral (Postfix's TLS codes, 4.7.x).
    const deferrals = [
      ...log.matchAll(
        new RegExp(
          `postfix/${via}\\[\\d+\\]: ${qid}: to=<bob@${domain}>.*dsn=(4\\.7\\.\\d+), status=deferred`,
          'g',
        ),
      ),
    ]
    assert.ok(deferrals.length > 0, `${id}: deferred by ${via}`)
    assert.equal(rcpt.status, deferrals.at(-1)![1], `${id}: the bounce carries the deferral's status`)
    assert.match(
      log,
      new RegExp(`postfix/qmgr\\[\\d+\\]: ${qid}: from=<alice@sender\\.test>, status=expired`),
      id,
    )
    return
  }
  assert.equal(o.dsn, undefined, `${id}: no bounce expected`)
  assert.ok(o.got, `${id}: must reach ${target}`)
  const received = /^Received: [\s\S]*?(?=^\S)/m.exec(o.got.raw)?.[0] ?? ''
  const plain = row.expect[target] === 'plain'
  assert.match(received, plain ? /with E?SMTP\b(?!S)/ : /with ESMTPS/, `${id}: link: ${received}`)
  assert.match(o.got.raw, /secret body of pfx-/)
  assert.match(log, new RegExp(`postfix/${via}\\[\\d+\\]: ${qid}: to=<bob@${domain}>.*status=sent`), id)
  const route = headerValues(o.got.raw, 'X-Linksec-Route')
  if (!row.transport) assert.deepEqual(route, [], `${id}: untagged mail carries no route header`)
  else assert.deepEqual(route, [`${row.transport.replace('linksec-', '')}; level=${row.level}`], id)
  // The milter's Authentication-Results travels with the message (Haraka renames an incoming one).
  const ars = headerValues(o.got.raw, '(?:Original-)?Authentication-Results')
  assert.ok(
    ars.some((v) => v.startsWith(`${AUTHSERV}; x-tls=pass`)),
    `${id}: Authentication-Results: ${ars.join(' | ')}`,
  )
  if (row.transport === 'linksec-secure')
    assert.match(
      log,
      new RegExp(`Verified TLS connection established to ${domain}\\[`),
      `${id}: certificate verified`,
    )
}
