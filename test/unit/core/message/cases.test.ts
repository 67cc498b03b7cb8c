/**
 * Every case in test/cases/ through both adapters, side by side: the milter
 * over a socket as Postfix drives it (test/helpers/milter-cases.ts) and the
 * Haraka plugin inside Haraka's hooks (test/helpers/haraka-cases.ts, with
 * incoming Authentication-Results left as received, so a removal shows under
 * the field's own name). Both run core/message's one pipeline, so they must
 * reach the same verdict and make the same header edits. The only
 * differences allowed are the ones each adapter's MTA forces, named here:
 * - HARAKA_DIFFERS (a REQUIRETLS refusal at MAIL instead of end of data);
 * - the route header ([enforce] route_header), which only the Postfix
 *   profile writes: Postfix routes tagged mail by it, Haraka's outbound duty
 *   checks every hop itself (core/message/route.ts).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { defaultConfig } from '../../../../core/config'
import { FORBID_SYSTEM_RESOLVER_ENV } from '../../../../core/net/servers'
import { loadCases, type Case } from '../../../cases/load'
import { HARAKA_DIFFERS, HARAKA_VARIANTS, runCaseThroughHaraka } from '../../../helpers/haraka-cases'
import { decisionOf, milterEdits, replyOf, runCaseThroughMilter, stepOf } from '../../../helpers/milter-cases'

process.env[FORBID_SYSTEM_RESOLVER_ENV] = '1'

const AS_RECEIVED = HARAKA_VARIANTS.find((v) => !v.cleanAuthResults)!

/** `550 5.7.10` of a reply line. */
const codes = (reply: string | undefined) => /^(\d{3}) (\d\.\d{1,3}\.\d{1,3})/.exec(reply ?? '')?.slice(1, 3)

const routeHeader = (c: Case) =>
  (c.config.enforce?.route_header ?? defaultConfig().enforce.route_header).toLowerCase()

type Field = { name: string; value: string }
const sorted = (fs: Field[]) =>
  fs.map((f) => `${f.name.toLowerCase()}: ${f.value}`).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))

describe('test/cases: the milter and the Haraka plugin decide alike', () => {
  const cases = loadCases()
  it('has cases to run', () => assert.ok(cases.length > 0))
  for (const c of cases) {
    it(`${c.name}: same verdict, same header edits`, { timeout: 30_000 }, async () => {
      const milter = await runCaseThroughMilter(c)
      const haraka = await runCaseThroughHaraka(c, AS_RECEIVED)
      const m = { decision: decisionOf(milter), step: stepOf(milter), reply: replyOf(milter.final) }
      const differs = HARAKA_DIFFERS[c.name]
      if (differs) {
        // Same kind of answer, same enhanced status; only where and the basic code differ.
        assert.equal(`${haraka.decision}@${haraka.step}`, differs.decision, differs.why)
        assert.equal(codes(haraka.reply)?.[1], codes(m.reply)?.[1], differs.why)
        return
      }
      assert.equal(`${haraka.decision}@${haraka.step}`, `${m.decision}@${m.step}`, haraka.log.join('\n'))
      assert.deepEqual(codes(haraka.reply), codes(m.reply || undefined), `${haraka.reply} vs ${m.reply}`)
      if (m.decision !== 'ACCEPT' && m.decision !== 'QUARANTINE') return
      const edits = milterEdits(milter)
      const route = routeHeader(c)
      assert.deepEqual(
        sorted(haraka.added),
        sorted(edits.added.filter((f) => f.name.toLowerCase() !== route)),
        'the same fields added',
      )
      assert.deepEqual(
        haraka.removed.map((f) => `${f.name.toLowerCase()} #${f.index}`).sort(),
        edits.removed
          .filter((f) => f.name !== route)
          .map((f) => `${f.name} #${f.index}`)
          .sort(),
        'the same fields removed',
      )
    })
  }
})
