import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { reject, tempfail } from '../../../core/verdict'
import { replyCodeText, verdictResponse } from '../../../milter/reply'

describe('milter reply texts (SMFIR_REPLYCODE)', () => {
  it('carries the code, the enhanced code and the sentence', () => {
    assert.deepEqual(verdictResponse(reject(550, '5.7.10', 'use TLS', 'x')), {
      type: 'replyCode',
      text: '550 5.7.10 use TLS',
    })
    assert.deepEqual(verdictResponse(tempfail(451, '4.7.5', 'key server down', 'x')), {
      type: 'replyCode',
      text: '451 4.7.5 key server down',
    })
  })

  it("doubles '%' because Postfix drops a lone one", () => {
    assert.equal(replyCodeText(550, '5.7.1', '100% sure'), '550 5.7.1 100%% sure')
  })

  it('makes a multi-line reply with the enhanced code on every line', () => {
    assert.equal(replyCodeText(550, '5.7.10', 'first\nsecond'), '550-5.7.10 first\r\n550 5.7.10 second')
  })

  it('wraps long sentences so no line passes the SMTP limit', () => {
    const text = replyCodeText(550, '5.7.10', Array.from({ length: 200 }, () => 'word').join(' '))
    const lines = text.split('\r\n')
    assert.ok(lines.length > 1)
    for (const l of lines) assert.ok(l.length < 512, l)
    assert.match(lines.at(-1)!, /^550 5\.7\.10 /)
  })

  it('repairs an enhanced code whose class does not match (Postfix would refuse the reply)', () => {
    assert.equal(replyCodeText(451, '5.7.1', 'x'), '451 4.0.0 x')
    assert.equal(replyCodeText(550, undefined, 'x'), '550 5.0.0 x')
  })

  it('turns control characters into spaces', () => {
    assert.equal(replyCodeText(550, '5.7.1', 'a\x00b\tc'), '550 5.7.1 a b c')
  })
})
