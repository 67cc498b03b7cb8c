/**
 * Issue 4 end to end: a real Haraka running linksec relays to three real
 * receiving servers — plaintext only; TLS without a LINKSEC declaration; TLS
 * with `LINKSEC 4` and a certificate from the test CA — and every row of the
 * table below is asserted by reading what each receiver got and parsing the
 * DSN that came back to the sender's domain.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { needTools } from '../helpers/tools'
import { startHaraka, type HarakaInstance, type QueuedMessage } from '../helpers/haraka'
import {
  PINNED_MX_PLUGIN,
  pinnedMxIni,
  startReceivers,
  stopReceivers,
  submit,
  type Receiver,
  type ReceiverKind,
} from '../helpers/receivers'
import { parseDsn, type ParsedDsn } from '../helpers/dsn'
import { testCa } from '../helpers/test-ca'
import { taggedMessage } from '../helpers/tagged-message'

type Expect = 'tls' | 'plain' | 'bounce' | 'safe_part'
type Target = Exclude<ReceiverKind, 'dsn'>

interface Row {
  name: string
  headers: string[]
  requiretls?: boolean
  fallbackPart?: boolean
  expect: Record<Target, Expect>
}

/** The table of the issue: what each kind of message gets at each kind of receiver. */
const TABLE: Row[] = [
  { name: 'untagged', headers: [], expect: { plain: 'plain', tls: 'tls', level4: 'tls' } },
  {
    name: 'level1',
    headers: ['Link-Security-Required: 1'],
    expect: { plain: 'bounce', tls: 'bounce', level4: 'tls' },
  },
  {
    name: 'level2',
    headers: ['Link-Security-Required: 2'],
    expect: { plain: 'bounce', tls: 'bounce', level4: 'tls' },
  },
  {
    name: 'level3',
    headers: ['Link-Security-Required: 3'],
    expect: { plain: 'bounce', tls: 'bounce', level4: 'tls' },
  },
  {
    name: 'level4',
    headers: ['Link-Security-Required: 4'],
    expect: { plain: 'bounce', tls: 'bounce', level4: 'tls' },
  },
  {
    name: 'requiretls',
    headers: [],
    requiretls: true,
    expect: { plain: 'bounce', tls: 'bounce', level4: 'tls' },
  },
  {
    name: 'tlsrequiredno',
    headers: ['Link-Security-Required: 4', 'TLS-Required: No'],
    expect: { plain: 'plain', tls: 'tls', level4: 'tls' },
  },
  {
    name: 'fallback',
    headers: ['Link-Security-Required: 4'],
    fallbackPart: true,
    expect: { plain: 'safe_part', tls: 'safe_part', level4: 'tls' },
  },
]

/** Why each bounce happens, as the DSN must say it. */
const BOUNCE_REASON: Record<Exclude<Target, 'level4'>, RegExp> = {
  plain: /does not offer an encrypted connection \(STARTTLS\)/,
  tls: /declares no link-security level|could not be verified|supports neither REQUIRETLS/,
}

const message = taggedMessage

const caseId = (row: Row, target: Target) => `enf-${row.name}-${target}`

describe('Haraka outbound no-downgrade table', { timeout: 180_000 }, () => {
  let receivers: Record<ReceiverKind, Receiver> | undefined
  let sender: HarakaInstance | undefined
  const outcome = new Map<string, { got?: QueuedMessage; dsn?: ParsedDsn }>()

  before(async () => {
    // The sender trusts the test CA, as a real server trusts the WebPKI roots.
    process.env.NODE_EXTRA_CA_CERTS = testCa().caFile
    receivers = await startReceivers()
    sender = await startHaraka({
      // An operator's bounce template: linksec's DSN is used for its refusals all the same.
      bounceTemplate: 'haraka',
      plugins: ['tls', 'linksec', 'test_relay', 'pinned_mx'],
      localPlugins: { pinned_mx: PINNED_MX_PLUGIN },
      config: {
        // weak.test (static list: level 1, so TLS is required) is served by the plaintext receiver.
        'pinned_mx.ini': `${pinnedMxIni(receivers)}weak.test=mx.weak.test:127.0.0.1:${receivers.plain.haraka.port}\n`,
        // The pinned MX is 127.0.0.1 with a name: allow it, retry quickly.
        'outbound.ini': 'local_mx_ok=true\ntemp_fail_intervals=5s\n',
        'linksec.domains.json': JSON.stringify({ policies: { 'weak.test': { mode: 'testing', level: 1 } } }),
      },
      linksec: {
        main: { level: 4, mailboxes_tls_only: true },
        enforce: { tls_retry_window: 0, fallback: 'deliver_safe_part' },
        // Static list and learned EHLO only: no policy lookup leaves the machine.
        policy: { txt: false, mta_sts: false, dane: false },
      },
    })
  })

  after(async () => {
    await sender?.stop()
    await stopReceivers(receivers)
    delete process.env.NODE_EXTRA_CA_CERTS
  })

  it('accepts every test message for relaying', async (t) => {
    if (!needTools(t, { openssl: 'openssl' })) return
    for (const row of TABLE) {
      for (const target of ['plain', 'tls', 'level4'] as Target[]) {
        const to = `bob@${receivers![target].domain}`
        const id = caseId(row, target)
        const r = await submit({
          port: sender!.port,
          from: 'alice@sender.test',
          to: [to],
          data: message(id, row, to),
          mailParams: row.requiretls ? ['REQUIRETLS'] : [],
        })
        assert.ok(r.accepted, `${id}: ${r.reply}`)
      }
    }
  })

  it('refuses at end of data a tagged message for a domain known to be below its level', async () => {
    const r = await submit({
      port: sender!.port,
      from: 'alice@sender.test',
      to: ['bob@level4.test', 'carol@weak.test'],
      data: 'Subject: enf-eom\r\nLink-Security-Required: 3\r\n\r\nsecret\r\n',
    })
    assert.equal(r.accepted, false)
    assert.match(r.reply, /^550 5\.7\.10 .*weak\.test \(level 1\)/)
    assert.doesNotMatch(r.reply, /level4\.test/)
    const untagged = await submit({
      port: sender!.port,
      from: 'alice@sender.test',
      to: ['carol@weak.test'],
      data: 'Subject: enf-eom-untagged\r\n\r\nhello\r\n',
    })
    assert.ok(untagged.accepted, untagged.reply)
  })

  it('every row ends where the table says', async () => {
    const expected = TABLE.flatMap((row) =>
      (['plain', 'tls', 'level4'] as Target[]).map((t) => ({ row, target: t })),
    )
    const deadline = Date.now() + 90_000
    while (outcome.size < expected.length && Date.now() < deadline) {
      collect(receivers!, outcome)
      await new Promise((r) => setTimeout(r, 250))
    }
    const ids = [...expected.map((e) => caseId(e.row, e.target)), 'enf-eom-untagged']
    while (ids.some((id) => !outcome.has(id)) && Date.now() < deadline) {
      collect(receivers!, outcome)
      await new Promise((r) => setTimeout(r, 250))
    }
    const missing = ids.filter((id) => !outcome.has(id))
    assert.deepEqual(missing, [], `no outcome for ${missing.join(', ')}\n${sender!.log().slice(-6000)}`)
    for (const { row, target } of expected)
      checkCase(row, target, receivers!, outcome.get(caseId(row, target))!)
    // Level-1 duty for untagged mail: a domain whose policy requires TLS never gets plaintext.
    const eom = outcome.get('enf-eom-untagged')!
    assert.equal(eom.got, undefined, 'untagged mail to a TLS-required domain is not sent in the clear')
    assert.equal(eom.dsn?.recipients[0]?.status, '5.7.10')
    assert.match(
      eom.dsn.recipients[0].detail,
      /mx\.weak\.test .*does not offer an encrypted connection \(STARTTLS\)/,
    )
    assert.match(
      eom.dsn.humanText.replace(/\s+/g, ' '),
      /weak\.test publishes a policy that requires an encrypted connection \(TLS\)/,
    )
  })
})

/** Files each receiver's and the DSN sink's messages under their case id. */
function collect(
  r: Record<ReceiverKind, Receiver>,
  out: Map<string, { got?: QueuedMessage; dsn?: ParsedDsn }>,
) {
  for (const kind of ['plain', 'tls', 'level4'] as Target[]) {
    for (const m of r[kind].got()) {
      const id = /^Subject: (enf-\S+)/m.exec(m.raw)?.[1]
      if (id) out.set(id, { ...out.get(id), got: m })
    }
  }
  for (const m of r.dsn.got()) {
    const dsn = parseDsn(m.raw)
    const id = dsn && /Subject: (enf-\S+)/.exec(dsn.originalHeaders)?.[1]
    if (id) out.set(id, { ...out.get(id), dsn })
  }
}

function checkCase(
  row: Row,
  target: Target,
  r: Record<ReceiverKind, Receiver>,
  o: { got?: QueuedMessage; dsn?: ParsedDsn },
) {
  const id = caseId(row, target)
  const want = row.expect[target]
  if (want === 'bounce') {
    assert.equal(o.got, undefined, `${id}: must not reach ${target}`)
    const rcpt = o.dsn?.recipients[0]
    assert.ok(rcpt, `${id}: a DSN must come back`)
    assert.equal(rcpt.action, 'failed', id)
    assert.equal(rcpt.status, '5.7.10', id)
    assert.ok(rcpt.detail.includes(r[target].mxName), `${id}: DSN names the hop: ${rcpt.detail}`)
    assert.match(rcpt.detail, BOUNCE_REASON[target as 'plain' | 'tls'], id)
    // The words a person reads: the hop and the reason, in the text part too.
    const text = o.dsn!.humanText.replace(/\s+/g, ' ')
    assert.match(text, /Your message could not be delivered/)
    assert.match(text, /(asks for link-security level \d|was sent with REQUIRETLS)/, id)
    assert.ok(text.includes(r[target].mxName), `${id}: human text names the hop`)
    assert.match(text, /What you can do:/, id)
    return
  }
  assert.equal(o.dsn, undefined, `${id}: no DSN expected`)
  assert.ok(o.got, `${id}: must reach ${target}`)
  const received = /^Received: [\s\S]*?(?=^\S)/m.exec(o.got.raw)?.[0] ?? ''
  const plainLink = want === 'plain' || (want === 'safe_part' && target === 'plain')
  assert.match(received, plainLink ? /with E?SMTP\b(?!S)/ : /with ESMTPS/, `${id}: link: ${received}`)
  if (want === 'safe_part') {
    assert.match(
      o.got.raw,
      /^Link-Security-Partial: only the part marked Link-Security-Fallback was delivered/m,
    )
    assert.match(o.got.raw, /pick up enf-/)
    assert.doesNotMatch(o.got.raw, /secret body/)
    assert.doesNotMatch(o.got.raw, /^Link-Security-Required:/m)
  } else {
    assert.match(o.got.raw, /secret body of enf-/)
  }
  if (row.requiretls) {
    const notes = o.got.notes as { linksec?: { requiretls?: boolean } }
    assert.equal(notes.linksec?.requiretls, true, `${id}: REQUIRETLS passed on to a hop that offers it`)
  }
}
