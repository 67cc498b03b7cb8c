/**
 * Runs every case in test/cases/ through the Haraka plugin's hooks (as
 * test/unit/milter/cases.test.ts runs them through the milter) and checks
 * DECISION@step, the reply and the header edits on the message as queued.
 *
 * Each case runs under two Haraka settings (HARAKA_VARIANTS): incoming
 * Authentication-Results left as they are, and Haraka's defaults, where
 * smtp.ini clean_auth_results renames them to Original-Authentication-Results
 * before any plugin's data_post and an spf result makes Haraka write an A-R
 * field of its own. A removal the case expects of incoming
 * "Authentication-Results #n" is then a removal of that same field under its
 * Original- name.
 *
 * Where the two adapters answer a case differently by design, HARAKA_DIFFERS
 * says how and why; the outcome must still agree with the case on the kind of
 * answer (REJECT/TEMPFAIL/…) and the enhanced status code.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { FORBID_SYSTEM_RESOLVER_ENV } from '../../../core/net/servers'
import { loadCases, type Case } from '../../cases/load'
import {
  HARAKA_DIFFERS,
  HARAKA_VARIANTS,
  mailParams,
  replyLine,
  runCaseThroughHaraka,
  type HarakaOutcome,
  type HarakaVariant,
} from '../../helpers/haraka-cases'
import { diffFields, splitFields, type HeaderField } from '../../helpers/header-fields'

// Whoever runs this file alone gets the same guard as `npm test`: no lookup through the system resolver.
process.env[FORBID_SYSTEM_RESOLVER_ENV] = '1'

const constants = require('haraka-constants') as Record<'deny' | 'denysoft', number>
const DSN = require('haraka-dsn') as { create(code: number, msg: string, s: number, d: number): object }

const enhanced = (reply: string | undefined) => /^\d{3} (\d\.\d{1,3}\.\d{1,3})/.exec(reply ?? '')?.[1]

function expectedOutcome(c: Case): { decision: string; reply?: string } {
  const d = HARAKA_DIFFERS[c.name]
  return d ?? { decision: `${c.expect.decision}@${c.expect.step}`, reply: c.expect.reply }
}

/** Where the removal of incoming `name #index` shows in the queued message under this variant. */
function expectedRemoval(c: Case, h: { name: string; index: number }, v: HarakaVariant): HeaderField {
  const incoming = splitFields(c.message).header.filter((f) => f.name.toLowerCase() === h.name.toLowerCase())
  const field = incoming[h.index - 1]
  assert.ok(field, `${c.name}: the message has no ${h.name} #${h.index} to remove`)
  const renamed = v.cleanAuthResults && h.name.toLowerCase() === 'authentication-results'
  return { name: renamed ? 'Original-Authentication-Results' : field.name, value: field.value }
}

const sameField = (a: HeaderField, b: HeaderField) =>
  a.name.toLowerCase() === b.name.toLowerCase() && a.value === b.value

function why(r: HarakaOutcome): string {
  return JSON.stringify(
    { decision: r.decision, step: r.step, hook: r.hook, reply: r.reply, log: r.log },
    null,
    1,
  )
}

function checkDecision(c: Case, r: HarakaOutcome): void {
  const want = expectedOutcome(c)
  assert.equal(`${r.decision}@${r.step}`, want.decision, why(r))
  if (want.reply) assert.ok(r.reply?.startsWith(want.reply), `reply ${r.reply} should start ${want.reply}`)
}

function checkHeaders(c: Case, r: HarakaOutcome, v: HarakaVariant): void {
  for (const h of c.expect.addsHeaders)
    assert.ok(
      r.added.some((a) => sameField(a, h)),
      `${h.name}: ${h.value} not added; added ${JSON.stringify(r.added)}`,
    )
  for (const h of c.expect.removesHeaders) {
    const gone = expectedRemoval(c, h, v)
    assert.ok(
      r.removed.some((x) => sameField(x, gone)),
      `${gone.name}: ${gone.value} (incoming ${h.name} #${h.index}) not removed; removed ${JSON.stringify(r.removed)}`,
    )
  }
}

/**
 * What holds for every accepted message: the body untouched, Haraka's own A-R
 * field kept, and the fields the case expects written at the top (RFC 8601 §5),
 * above the Received field Haraka added.
 */
function checkQueued(c: Case, r: HarakaOutcome, v: HarakaVariant): void {
  assert.ok(r.queued, 'an accepted message is queued')
  const header = r.queued.header
  assert.equal(r.queued.body, splitFields(c.message).body, 'the body reaches the queue unchanged')
  const received = header.findIndex((f) => /^received$/i.test(f.name))
  assert.ok(received >= 0, 'Haraka wrote its Received field')
  for (const h of c.expect.addsHeaders)
    assert.ok(
      header.findIndex((f) => sameField(f, h)) < received,
      `${h.name}: ${h.value} must sit above Received`,
    )
  for (const result of v.otherAuthResults)
    assert.ok(
      header.some((f) => /^authentication-results$/i.test(f.name) && f.value.includes(result)),
      `Haraka's own Authentication-Results (${result}) must survive linksec`,
    )
}

describe('test/cases through the Haraka plugin', () => {
  const cases = loadCases()
  it('has cases to run, and every listed difference names a case', () => {
    assert.ok(cases.length > 0)
    for (const name of Object.keys(HARAKA_DIFFERS))
      assert.ok(
        cases.some((c) => c.name === name),
        `HARAKA_DIFFERS lists ${name}, which is not a case`,
      )
  })
  for (const [name, d] of Object.entries(HARAKA_DIFFERS)) {
    it(`${name}: differs from the milter only in step and basic code (${d.decision} ${d.reply})`, () => {
      const c = cases.find((x) => x.name === name)!
      assert.equal(d.decision.split('@')[0], c.expect.decision, d.why)
      assert.equal(enhanced(d.reply), enhanced(c.expect.reply), d.why)
    })
  }
  for (const v of HARAKA_VARIANTS) {
    describe(v.name, () => {
      for (const c of cases) {
        const want = expectedOutcome(c)
        it(`${c.name}: ${c.description} (${want.decision})`, { timeout: 30_000 }, async () => {
          const r = await runCaseThroughHaraka(c, v)
          checkDecision(c, r)
          if (r.decision !== 'ACCEPT' && r.decision !== 'QUARANTINE') return
          checkHeaders(c, r, v)
          checkQueued(c, r, v)
        })
      }
    })
  }
})

describe('the Haraka case runner itself', () => {
  it('upper-cases MAIL parameters and gives valueless ones null, as connection.js cmd_mail', () => {
    assert.deepEqual(mailParams(['requiretls', 'body=8BITMIME', 'Size=12']), {
      REQUIRETLS: null,
      BODY: '8BITMIME',
      SIZE: '12',
    })
  })

  it('writes a DSN reply verbatim and a plain refusal with the hook default code', () => {
    assert.equal(
      replyLine('data_post', { code: constants.deny, msg: DSN.create(550, 'no TLS', 7, 10) }),
      '550 5.7.10 no TLS',
    )
    assert.equal(replyLine('data', { code: constants.denysoft, msg: 'later' }), '451 later')
    assert.equal(replyLine('rcpt', { code: constants.deny }), '550')
  })

  it('unfolds header fields and splits off the body', () => {
    const { header, body } = splitFields('A: 1\r\nB: two\r\n\tlines\r\n\r\nbody\r\n')
    assert.deepEqual(header, [
      { name: 'A', value: '1' },
      { name: 'B', value: 'two\tlines' },
    ])
    assert.equal(body, 'body\n')
  })

  it('tells removed fields (with their per-name index) from added ones', () => {
    const ar = (value: string) => ({ name: 'Authentication-Results', value })
    const before = [ar('x; a'), { name: 'Received', value: 'r' }, ar('y; b'), ar('x; c')]
    const after = [ar('x; new'), { name: 'Received', value: 'r' }, ar('y; b')]
    const d = diffFields(before, after)
    assert.deepEqual(d.added, [ar('x; new')])
    assert.deepEqual(
      d.removed.map((f) => [f.value, f.index]),
      [
        ['x; a', 1],
        ['x; c', 3],
      ],
    )
  })
})
