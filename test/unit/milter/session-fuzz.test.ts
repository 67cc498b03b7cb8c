import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { runSession, target } from '../../fuzz/targets/milter-session'

after(() => target.close!())

describe('the whole-session fuzz target (test/fuzz/targets/milter-session.ts), a fixed sample', () => {
  it('every generated session ends in a reply or a clean close, and most get a verdict at end of message', async () => {
    let verdicts = 0
    for (let n = 0; n < 30; n++) {
      const got = await runSession(Buffer.from(`sample-${n}`))
      if (got.some((m) => m.type === 'replyCode' || m.type === 'continue' || m.type === 'accept')) verdicts++
    }
    assert.ok(verdicts >= 15, `${verdicts} of 30 sessions got a verdict`)
  })
})
