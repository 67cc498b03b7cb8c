import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FULL_ENFORCEMENT, buildDsn, type DsnFacts, type DsnHop } from '../../../core/enforce'
import { NO_REQUIREMENT, type Requirement } from '../../../core/levels'
import { parseDsn } from '../../helpers/dsn'

const HEADERS = [
  'From: Alice <alice@sender.test>',
  'To: bob@plain.test',
  'Subject: Quarterly figures',
  'Message-ID: <q3@sender.test>',
  'Date: Thu, 03 Dec 2026 10:00:00 +0000',
  'Link-Security-Required: 3',
  '',
  'the secret body',
].join('\r\n')

const level = (n: 1 | 2 | 3 | 4): Requirement => ({
  ...NO_REQUIREMENT,
  level: n,
  verifiedCertificate: n === 4,
  source: 'header',
})
const REQUIRETLS: Requirement = {
  ...NO_REQUIREMENT,
  level: 3,
  requireTls: true,
  verifiedCertificate: true,
  source: 'requiretls',
}

const HOP = 'mx.plain.test [192.0.2.25]:25'

function facts(hop: Partial<DsnHop>, more: Partial<DsnFacts> = {}): DsnFacts {
  return {
    reportingMta: 'mx.sender.test',
    sender: 'alice@sender.test',
    recipients: ['bob@plain.test'],
    domain: 'plain.test',
    requirement: level(3),
    enforcement: FULL_ENFORCEMENT,
    hops: [{ hop: HOP, mta: 'mx.plain.test', reason: 'no_starttls', ...hop }],
    fallback: 'off',
    originalHeaders: HEADERS,
    arrivalDate: new Date('2026-12-03T10:00:01Z'),
    date: new Date('2026-12-03T10:00:05Z'),
    id: '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
    ...more,
  }
}

/** The top-level header of the DSN, unfolded. */
function topHeader(message: string, name: string): string | undefined {
  const head = message.slice(0, message.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ')
  return new RegExp(`^${name}: (.*)$`, 'im').exec(head)?.[1]
}

describe('buildDsn', () => {
  it('names the message, the recipient, the hop and the reason, with From, To and Subject', () => {
    const dsn = buildDsn(facts({}))
    assert.equal(topHeader(dsn.message, 'From'), 'Mail Delivery System <postmaster@mx.sender.test>')
    assert.equal(topHeader(dsn.message, 'To'), '<alice@sender.test>')
    assert.equal(topHeader(dsn.message, 'Subject'), 'Undelivered: Quarterly figures')
    assert.equal(topHeader(dsn.message, 'In-Reply-To'), '<q3@sender.test>')
    assert.equal(topHeader(dsn.message, 'Auto-Submitted'), 'auto-replied')
    const parsed = parseDsn(dsn.message)
    assert.ok(parsed, 'a multipart/report with a delivery-status part')
    const text = parsed.humanText.replace(/\s+/g, ' ')
    assert.match(text, /Subject: Quarterly figures/)
    assert.match(text, /Message-ID: <q3@sender\.test>/)
    assert.match(text, /To: bob@plain\.test/)
    assert.ok(text.includes(`${HOP} does not offer an encrypted connection (STARTTLS)`), text)
    assert.match(text, /without the "Link-Security-Required: 3" header/)
    assert.match(text, /Link-Security-Fallback: yes/)
    assert.match(text, /Ask the administrator of plain\.test to offer encryption \(STARTTLS\)/)
  })

  it('has a machine part with Status 5.7.10, Remote-MTA and Diagnostic-Code, and the original headers only', () => {
    const dsn = buildDsn(facts({}))
    const parsed = parseDsn(dsn.message)!
    assert.deepEqual(parsed.recipients.length, 1)
    const r = parsed.recipients[0]!
    assert.equal(r.finalRecipient, 'bob@plain.test')
    assert.equal(r.action, 'failed')
    assert.equal(r.status, '5.7.10')
    assert.equal(r.remoteMta, 'dns; mx.plain.test')
    assert.match(dsn.message, /^Diagnostic-Code: X-Linksec; message \(Link-Security-Required: 3\) not sent:/m)
    assert.match(dsn.message, /^Reporting-MTA: dns; mx\.sender\.test$/m)
    assert.match(dsn.message, /^Arrival-Date: Thu, 03 Dec 2026 10:00:01 \+0000$/m)
    assert.match(dsn.message, /^Content-Type: text\/rfc822-headers$/m)
    assert.match(parsed.originalHeaders, /^Subject: Quarterly figures$/m)
    assert.match(parsed.originalHeaders, /^Link-Security-Required: 3$/m)
    assert.doesNotMatch(dsn.message, /the secret body/)
    // SMTP-ready: CRLF only, no line over 998 octets (RFC 5322 §2.1.1).
    assert.doesNotMatch(dsn.message, /[^\r]\n/)
    assert.ok(dsn.message.split('\r\n').every((l) => l.length <= 998))
  })

  it('says why for each reason kind', () => {
    const cases: [Partial<DsnHop>, RegExp, RegExp][] = [
      [{ reason: 'no_starttls' }, /does not offer an encrypted connection \(STARTTLS\)/, /offer encryption/],
      [
        { reason: 'peer_level_low', declared: { level: 2, source: 'EHLO' } },
        /declares link-security level 2 in its EHLO reply, below the level 3/,
        /_linksec\.plain\.test such as "v=LINKSEC1; level=3"/,
      ],
      [
        { reason: 'peer_level_low', declared: { level: 1, source: 'txt' } },
        /declares link-security level 1 in its _linksec DNS record/,
        /publish the link-security level/,
      ],
      [
        { reason: 'peer_level_unknown', declared: { source: 'none' } },
        /declares no link-security level; your message requires level 3 or more/,
        /publish the link-security level/,
      ],
      [
        { reason: 'cert_unverified', error: 'DEPTH_ZERO_SELF_SIGNED_CERT', retried: true },
        /the certificate of .* could not be verified \(DEPTH_ZERO_SELF_SIGNED_CERT\); this server kept trying/,
        /certificate that verifies/,
      ],
      [
        { reason: 'tls_failed', error: 'wrong version number' },
        /the encrypted connection \(TLS handshake\) with .* failed \(wrong version number\)/,
        /offer encryption/,
      ],
      [
        { reason: 'mx_not_in_policy' },
        /not one of the mail servers named in the published policy/,
        /certificate/,
      ],
      [
        { reason: 'no_requiretls' },
        /supports neither REQUIRETLS nor link-security level 3/,
        /support REQUIRETLS/,
      ],
    ]
    for (const [hop, why, advice] of cases) {
      const dsn = buildDsn(facts(hop))
      const text = dsn.humanText.replace(/\s+/g, ' ')
      assert.match(text, why, `${hop.reason}: ${text}`)
      assert.match(text, advice, `${hop.reason}: ${text}`)
      assert.ok(text.includes(HOP), `${hop.reason} names the hop`)
      assert.match(dsn.diagnostic, why, `${hop.reason}: the Diagnostic-Code says the same`)
      assert.match(dsn.message, new RegExp(`^X-Linksec-Reason: ${hop.reason}$`, 'm'))
    }
  })

  it('states the rule with and without the peer-level rule, and for level 4 and REQUIRETLS', () => {
    const text = (f: DsnFacts) => buildDsn(f).humanText.replace(/\s+/g, ' ')
    assert.match(
      text(facts({})),
      /only over an encrypted connection \(TLS\) to a server that declares link-security level 3 or more\./,
    )
    assert.match(
      text(facts({}, { enforcement: { noDowngrade: true, peerLevel: false } })),
      /asks for link-security level 3 \(Link-Security-Required: 3\): it may leave this server only over an encrypted connection \(TLS\)\./,
    )
    assert.match(text(facts({}, { requirement: level(4) })), /level 4 or more, whose certificate verifies\./)
    const rt = text(facts({ reason: 'no_requiretls' }, { requirement: REQUIRETLS }))
    assert.match(rt, /sent with REQUIRETLS \(RFC 8689\)/)
    assert.match(rt, /send it again without REQUIRETLS/)
    const untagged = text(
      facts({}, { requirement: NO_REQUIREMENT, policyRequiresTls: true, enforcement: FULL_ENFORCEMENT }),
    )
    assert.match(untagged, /plain\.test publishes a policy that requires an encrypted connection/)
    assert.match(untagged, /TLS-Required: No/)
    assert.doesNotMatch(untagged, /Link-Security-Fallback/)
  })

  it('offers the safe-part fallback when this server has it', () => {
    const on = buildDsn(facts({}, { fallback: 'no_marked_part' })).humanText.replace(/\s+/g, ' ')
    assert.match(
      on,
      /mark the part the recipient may read anyway with a "Link-Security-Fallback: yes" header/,
    )
    const off = buildDsn(facts({})).humanText.replace(/\s+/g, ' ')
    assert.match(off, /does not deliver a part marked "Link-Security-Fallback: yes" on its own/)
  })

  it('lists every hop tried, and reports the last one as Remote-MTA', () => {
    const dsn = buildDsn(
      facts(
        {},
        {
          hops: [
            { hop: 'mx1.plain.test [192.0.2.1]:25', mta: 'mx1.plain.test', reason: 'no_starttls' },
            {
              hop: 'mx2.plain.test [192.0.2.2]:25',
              mta: 'mx2.plain.test',
              reason: 'peer_level_low',
              declared: { level: 1, source: 'EHLO' },
            },
          ],
          recipients: ['bob@plain.test', 'carol@plain.test'],
        },
      ),
    )
    const parsed = parseDsn(dsn.message)!
    assert.match(parsed.humanText, /2 mail servers were tried/)
    assert.match(parsed.humanText, /mx1\.plain\.test \[192\.0\.2\.1\]:25 does not offer/)
    assert.match(
      parsed.humanText.replace(/\s+/g, ' '),
      /mx2\.plain\.test \[192\.0\.2\.2\]:25 declares link-security level 1/,
    )
    assert.deepEqual(
      parsed.recipients.map((r) => [r.finalRecipient, r.status, r.remoteMta]),
      [
        ['bob@plain.test', '5.7.10', 'dns; mx2.plain.test'],
        ['carol@plain.test', '5.7.10', 'dns; mx2.plain.test'],
      ],
    )
  })

  it('cannot be broken by what the message or the peer wrote', () => {
    const dsn = buildDsn(
      facts(
        { reason: 'cert_unverified', error: 'bad\r\nBcc: victim@x.test' },
        {
          originalHeaders: 'Subject: hi\r\n there\r\nMessage-ID: <a@b>\r\n\r\nbody',
          sender: 'a@b.test\r\nX: y',
        },
      ),
    )
    const head = dsn.message.slice(0, dsn.message.indexOf('\r\n\r\n'))
    assert.doesNotMatch(head, /^X: y/m)
    assert.doesNotMatch(dsn.message, /^Bcc:/m)
    assert.equal(topHeader(dsn.message, 'Subject'), 'Undelivered: hi there')
    assert.match(dsn.humanText, /bad Bcc: victim@x\.test/)
  })

  it('names the recipients when the message has no Subject, and needs a hop', () => {
    const dsn = buildDsn(facts({}, { originalHeaders: 'From: a@b.test\r\n\r\n' }))
    assert.equal(topHeader(dsn.message, 'Subject'), 'Undelivered: your message to bob@plain.test')
    assert.throws(() => buildDsn({ ...facts({}), hops: [] }), /at least one refused hop/)
  })
})

/** The sample bounce in docs/operators.md is this builder's output for these facts, byte for byte. */
describe('the sample bounce in docs/operators.md', () => {
  const SAMPLE: DsnFacts = {
    reportingMta: 'mx.example.org',
    sender: 'alice@example.org',
    recipients: ['bob@example.net'],
    domain: 'example.net',
    requirement: level(3),
    enforcement: FULL_ENFORCEMENT,
    hops: [{ hop: 'mx1.example.net [192.0.2.25]:25', mta: 'mx1.example.net', reason: 'no_starttls' }],
    fallback: 'off',
    originalHeaders: [
      'From: Alice <alice@example.org>',
      'To: Bob <bob@example.net>',
      'Subject: Contract draft',
      'Message-ID: <contract-7@example.org>',
      'Date: Thu, 03 Dec 2026 09:12:00 +0000',
      'Link-Security-Required: 3',
      'MIME-Version: 1.0',
      'Content-Type: text/plain',
      '',
    ].join('\r\n'),
    arrivalDate: new Date('2026-12-03T09:12:01Z'),
    date: new Date('2026-12-03T09:12:03Z'),
    id: '0b3c9a52-4f3e-4d2a-9d51-2f1e7c0a9e11',
  }

  it('is what buildDsn writes', () => {
    const docs = fs.readFileSync(path.join(__dirname, '..', '..', '..', '..', 'docs', 'operators.md'), 'utf8')
    const m = /<!-- sample-bounce -->\n```\n([\s\S]*?)```\n/.exec(docs)
    assert.ok(m, 'docs/operators.md has a sample bounce block after <!-- sample-bounce -->')
    const generated = buildDsn(SAMPLE).message.replace(/\r\n/g, '\n')
    if (process.env.LINKSEC_WRITE_SAMPLE === '1') {
      const file = path.join(__dirname, '..', '..', '..', '..', 'docs', 'operators.md')
      fs.writeFileSync(file, docs.replace(m[0], `<!-- sample-bounce -->\n\`\`\`\n${generated}\`\`\`\n`))
      return
    }
    assert.equal(
      m[1],
      generated,
      'regenerate with LINKSEC_WRITE_SAMPLE=1 node --test dist/test/unit/core/enforce-dsn.test.js',
    )
  })
})
