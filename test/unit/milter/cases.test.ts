/**
 * Runs every case in test/cases/ through the milter app over a real socket,
 * driven the way Postfix drives a milter, and checks DECISION@step, the
 * reply and the header edits. The Haraka plugin runs the same cases.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { loadCases, parseCase } from '../../cases/load'
import { decisionOf, milterEdits, replyOf, runCaseThroughMilter, stepOf } from '../../helpers/milter-cases'

describe('test/cases through the milter', () => {
  const cases = loadCases()
  it('has cases to run', () => assert.ok(cases.length > 0))
  it('refuses a case whose decision is not DECISION@step', () => {
    const raw = { mail: { from: '<a@b>' }, rcpt: ['<c@d>'], message: '', expect: { decision: 'MAYBE@eom' } }
    assert.throws(() => parseCase('bad', raw), /expect\.decision must be DECISION@step/)
  })
  for (const c of cases) {
    it(`${c.name}: ${c.description} (${c.expect.decision}@${c.expect.step})`, async () => {
      const r = await runCaseThroughMilter(c)
      assert.equal(
        `${decisionOf(r)}@${stepOf(r)}`,
        `${c.expect.decision}@${c.expect.step}`,
        JSON.stringify(r.final),
      )
      if (c.expect.reply) assert.ok(replyOf(r.final).startsWith(c.expect.reply), replyOf(r.final))
      const { added, removed } = milterEdits(r)
      for (const h of c.expect.addsHeaders)
        assert.ok(
          added.some((a) => a.name === h.name && a.value === h.value),
          `${h.name}: ${h.value} not added; added ${JSON.stringify(added)}`,
        )
      for (const h of c.expect.removesHeaders)
        assert.ok(
          removed.some((x) => x.name === h.name.toLowerCase() && x.index === h.index),
          `${h.name} #${h.index} not removed`,
        )
    })
  }
})
