import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { parseConfig } from '../../../core/config'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime } from '../../../core/runtime'
import type { Service } from '../../../core/service'
import { CONTINUE, reject } from '../../../core/verdict'
import { messageStep } from '../../../core/message'
import { createMilterApp } from '../../../milter/app'
import { MAX_HEADER_VALUE, MAX_REPLY_TEXT, replyCodeText, safeHeaderValue } from '../../../milter/reply'
import { startMilterService } from '../../../milter/server'
import { MilterClient, runTransaction } from '../../helpers/milter-client'

/** Every kind of attacker byte that could reach a reply or a header: NUL, ESC, BEL, lone CR, bare LF, C1, DEL. */
const HOSTILE = [
  'a\0b',
  'esc\x1b[31m',
  'bel\x07',
  'cr\rInjected: 1',
  'lf\nX-Injected: 1',
  'c1\x85\x9b',
  'del\x7f',
]

/** A reply text as Postfix reads it: CRLF between lines, printable ASCII inside each. */
function assertCleanReply(text: string): void {
  for (const line of text.split('\r\n')) {
    assert.match(line, /^[45]\d\d[ -][245]\.\d{1,3}\.\d{1,3}( [\x20-\x7e]*)?$/, JSON.stringify(line))
    assert.ok(line.length <= 512, `line of ${line.length}`)
  }
}

/** A header value as smfi_addheader wants it: lines joined by LF + white space, no other control. */
function assertCleanHeader(value: string): void {
  assert.doesNotMatch(value, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/, JSON.stringify(value.slice(0, 80)))
  assert.doesNotMatch(value, /\n(?![ \t])/, 'every line break is a fold')
  for (const line of value.split('\n')) assert.ok(line.length <= 998, `line of ${line.length}`)
  assert.ok(value.length <= MAX_HEADER_VALUE + 200, `value of ${value.length}`)
}

describe('what the milter writes is clean, whatever the attacker sent', () => {
  it('reply texts: no lone CR, control or non-ASCII character; long texts capped', () => {
    for (const h of HOSTILE) assertCleanReply(replyCodeText(550, '5.7.1', `from ${h} rejected`))
    assert.equal(replyCodeText(550, '5.7.1', 'a\rb'), '550-5.7.1 a\r\n550 5.7.1 b')
    const long = replyCodeText(550, '5.7.1', `${'x'.repeat(60_000)} ${'word '.repeat(20_000)}`)
    assertCleanReply(long)
    assert.ok(long.length < MAX_REPLY_TEXT + 200, `${long.length}`)
    assert.equal(
      replyCodeText(550, '5.7.1\r\n250 ok', 'x'),
      '550 5.0.0 x',
      'a malformed enhanced code is replaced',
    )
  })

  it('header values: controls become spaces, a bare LF cannot start a new field, folds are kept', () => {
    for (const h of HOSTILE) assertCleanHeader(safeHeaderValue(`mx; x-openpgp=fail reason="${h}"`))
    assert.equal(safeHeaderValue('a;\r\n\tb'), 'a;\n\tb')
    assert.equal(safeHeaderValue('a\nX-Injected: 1'), 'a X-Injected: 1')
    assertCleanHeader(safeHeaderValue(`mx; reason="${'y'.repeat(60_000)}"`))
    assertCleanHeader(safeHeaderValue(`mx; reason="${'word '.repeat(12_000)}"`))
  })

  const services: Service[] = []
  after(() => Promise.all(services.map((s) => s.close(0))))

  // A refused message carries no header edits (core/message/pipeline.ts), so the reply is checked on a
  // refusal and the field on a message that is kept, both quoting the same hostile From.
  it('through the running milter: a step quoting hostile bytes gets clean fields and a clean reply', async () => {
    const rt = createRuntime(parseConfig({ main: { authserv_id: 'mx.example.net' } }, '/tmp'), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    const quoting = messageStep('quoting', async (msg) => {
      const from = msg.headerValues('From')[0] ?? ''
      const refuse = msg.headerValues('Subject')[0] === 'refuse'
      return {
        verdict: refuse
          ? reject(550, '5.7.1', `the signed part's From ${from} does not match`, 'mismatch')
          : CONTINUE,
        headers: [
          {
            op: 'prepend',
            name: 'Authentication-Results',
            value: `mx.example.net; x-openpgp=fail from=${from}`,
          },
        ],
      }
    })
    const svc = await startMilterService(rt, {
      listen: 'inet:127.0.0.1:0',
      handler: createMilterApp(rt, { steps: [quoting] }),
    })
    services.push(svc)
    // The wire cannot carry a NUL inside a value (it ends the string); the rest arrives as sent.
    for (const h of [...HOSTILE.filter((x) => !x.includes('\0')), 'x'.repeat(60_000)]) {
      const run = async (subject: string) => {
        const c = await MilterClient.connect(svc.address)
        await c.negotiate()
        const r = await runTransaction(c, {
          mail: ['<a@example.org>'],
          rcpt: [['<b@example.net>']],
          headers: [
            ['From', `<eve@example.org> ${h}`],
            ['Subject', subject],
          ],
          body: 'x\r\n',
        })
        c.destroy()
        return r
      }
      const refused = await run('refuse')
      assert.equal(refused.final.type, 'replyCode')
      assertCleanReply((refused.final as { text: string }).text)
      const r = await run('keep')
      const ar = r.modifications.find((m) => m.type === 'insertHeader')
      assert.ok(ar && ar.type === 'insertHeader', JSON.stringify(r.modifications).slice(0, 200))
      assertCleanHeader(ar.value)
    }
  })
})
