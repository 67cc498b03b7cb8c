import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CONTINUE, internalError, reject, tempfail } from '../../../core/verdict'
import { CONT, DENY, DENYSOFT } from '../../../plugins/haraka'
import { harakaReply } from '../../../plugins/reply'

type Dsn = { code: number; reply: string; constructor: { name: string } }

describe('harakaReply', () => {
  it('continues on continue/accept without a message', () => {
    assert.deepEqual(harakaReply(CONTINUE), [CONT])
    assert.deepEqual(harakaReply({ action: 'accept', reason: 'ok' }), [CONT])
  })

  it('turns a reject into DENY with a DSN carrying code, enhanced status and sentence', () => {
    const [code, msg] = harakaReply(reject(550, '5.7.10', 'resend it over STARTTLS', 'tagged_plaintext'))
    const dsn = msg as Dsn
    assert.equal(code, DENY)
    // Haraka prints a DSN's own code and reply only when its class is named DSN.
    assert.equal(dsn.constructor.name, 'DSN')
    assert.equal(dsn.code, 550)
    assert.equal(dsn.reply, '5.7.10 resend it over STARTTLS')
  })

  it('turns a tempfail into DENYSOFT with its own 4xx code (not Haraka’s 450)', () => {
    const [code, msg] = harakaReply(internalError())
    assert.equal(code, DENYSOFT)
    assert.equal((msg as Dsn).code, 451)
    assert.match((msg as Dsn).reply, /^4\.3\.0 linksec could not check this message/)
    const [, other] = harakaReply(tempfail(454, '4.7.5', 'key lookup failed', 'x'))
    assert.equal((other as Dsn).code, 454)
    assert.equal((other as Dsn).reply, '4.7.5 key lookup failed')
  })
})
