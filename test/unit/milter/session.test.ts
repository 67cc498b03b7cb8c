import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { silentLogger } from '../../../core/log'
import { negotiate, type HandlerNeeds } from '../../../milter/negotiate'
import {
  MilterSession,
  type MilterHandler,
  type SessionFacts,
  type Transaction,
} from '../../../milter/session'

interface Seen {
  helo?: string
  tx?: Transaction
  tls?: string
}
import { Action, Cmd, Proto } from '../../../milter/wire/codes'
import { MilterProtocolError } from '../../../milter/wire/errors'
import type { MilterCommand, MilterResponse } from '../../../milter/wire/types'

const OFFER: MilterCommand = { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff }

const OBSERVE_ALL: HandlerNeeds = {
  events: {
    connect: 'observe',
    helo: 'observe',
    mail: 'observe',
    rcpt: 'observe',
    data: 'none',
    header: 'observe',
    eoh: 'none',
    body: 'none',
    unknown: 'none',
  },
  actions: Action.addHeaders | Action.changeHeaders,
}

function handler(over: Partial<MilterHandler> = {}, seen: Seen[] = []): MilterHandler {
  return {
    needs: OBSERVE_ALL,
    async endOfMessage(facts) {
      seen.push(
        structuredClone({ helo: facts.helo, tx: facts.transaction, tls: facts.macros.get('tls_version') }),
      )
      return {
        modifications: [{ type: 'addHeader', name: 'X-Seen', value: 'yes' }],
        final: { type: 'accept' },
      }
    },
    ...over,
  }
}

async function run(s: MilterSession, cmds: MilterCommand[]): Promise<MilterResponse[]> {
  const out: MilterResponse[] = []
  for (const c of cmds) out.push(...(await s.handle(c)))
  return out
}

const session = (h: MilterHandler) => new MilterSession(h, { id: 1, log: silentLogger })
const macro = (command: number, ...pairs: Array<[string, string]>): MilterCommand => ({
  type: 'macro',
  command,
  macros: pairs,
})
const connect: MilterCommand = {
  type: 'connect',
  host: 'localhost',
  family: 'inet4',
  port: 4000,
  address: '127.0.0.1',
}
const mail: MilterCommand = { type: 'mail', args: ['<a@example.org>', 'BODY=8BITMIME'] }
const rcpt: MilterCommand = { type: 'rcpt', args: ['<b@example.net>'] }
const header = (name: string, value: string): MilterCommand => ({ type: 'header', name, value })
const EOM: MilterCommand = { type: 'endOfMessage', chunk: Buffer.alloc(0) }

describe('negotiation', () => {
  it('asks for no reply on observed events and switches unneeded ones off, within the offer', () => {
    const { negotiated, reply } = negotiate(OFFER, OBSERVE_ALL)
    const want =
      Proto.noReplyConnect |
      Proto.noReplyHelo |
      Proto.noReplyMail |
      Proto.noReplyRcpt |
      Proto.noReplyHeader |
      Proto.noData |
      Proto.noEoh |
      Proto.noBody |
      Proto.noUnknown |
      Proto.skip
    assert.equal(negotiated.protocol, want)
    assert.deepEqual(reply, {
      type: 'optneg',
      version: 6,
      actions: Action.addHeaders | Action.changeHeaders,
      protocol: want,
      symbolLists: [],
    })
  })

  it('never asks for flags or actions the MTA did not offer (an old MTA gets replies)', () => {
    const old = { type: 'optneg', version: 2, actions: Action.addHeaders, protocol: 0x7f } as const
    const { negotiated } = negotiate(old, OBSERVE_ALL)
    assert.equal(negotiated.version, 2)
    assert.equal(negotiated.actions, Action.addHeaders)
    assert.equal(negotiated.protocol & ~0x7f, 0)
    assert.equal(negotiated.canSkip, false)
  })

  it('asks for macro lists (SMFIF_SETSYMLIST) only when the MTA offers that action', () => {
    const needs: HandlerNeeds = { ...OBSERVE_ALL, macros: { mail: 'i {tls_version}' } }
    const offer = OFFER
    const { reply } = negotiate(offer, needs)
    assert.deepEqual((reply as { symbolLists: unknown }).symbolLists, [
      { stage: 2, macros: 'i {tls_version}' },
    ])
    assert.ok((reply as { actions: number }).actions & Action.setSymbolList)
    const old = negotiate({ ...offer, actions: Action.addHeaders | Action.changeHeaders }, needs).reply
    assert.deepEqual((old as { symbolLists: unknown }).symbolLists, [])
    assert.equal((old as { actions: number }).actions & Action.setSymbolList, 0)
  })

  it('refuses protocol version 1', () => {
    assert.throws(
      () => negotiate({ type: 'optneg', version: 1, actions: 1, protocol: 0 }, OBSERVE_ALL),
      MilterProtocolError,
    )
  })
})

describe('milter session', () => {
  it('runs a Postfix conversation: replies only where Postfix waits, edits and final reply at end', async () => {
    const seen: Seen[] = []
    const s = session(handler({}, seen))
    const out = await run(s, [
      OFFER,
      macro(Cmd.connect, ['j', 'mta.example.test']),
      connect,
      macro(Cmd.helo),
      { type: 'helo', name: 'client.example.test' },
      // STARTTLS: Postfix aborts and repeats HELO with the TLS macros.
      { type: 'abort' },
      macro(Cmd.helo, ['{tls_version}', 'TLSv1.3'], ['{cipher}', 'TLS_AES_256_GCM_SHA384']),
      { type: 'helo', name: 'client2.example.test' },
      macro(Cmd.mail, ['{mail_addr}', 'a@example.org']),
      mail,
      rcpt,
      macro(Cmd.data, ['i', 'Q1']),
      header('Subject', 'hi'),
      macro(Cmd.eoh, ['i', 'Q1']),
      macro(Cmd.body, ['i', 'Q1']),
      macro(Cmd.endOfMessage, ['i', 'Q1']),
      EOM,
    ])
    assert.deepEqual(
      out.map((r) => r.type),
      ['optneg', 'addHeader', 'accept'],
    )
    assert.equal(seen.length, 1)
    assert.equal(seen[0]!.helo, 'client2.example.test')
    assert.equal(seen[0]!.tls, 'TLSv1.3')
    const tx = seen[0]!.tx!
    assert.equal(tx.sender, '<a@example.org>')
    assert.deepEqual(tx.senderArgs, ['BODY=8BITMIME'])
    assert.deepEqual(tx.recipients, [{ address: '<b@example.net>', args: [] }])
    assert.deepEqual(tx.headers, [{ name: 'Subject', value: 'hi' }])
    assert.equal(s.busy, false, 'the transaction ends with end of message')
  })

  it('answers 451 4.4.2, not the check, when the connection runs out of time during end of message', async () => {
    const s: MilterSession = session(
      handler({
        async endOfMessage() {
          s.expire(1000) // what it held is dropped under the check
          return {
            modifications: [{ type: 'addHeader', name: 'X-Seen', value: 'yes' }],
            final: { type: 'accept' },
          }
        },
      }),
    )
    const out = await run(s, [
      OFFER,
      connect,
      { type: 'helo', name: 'c' },
      mail,
      rcpt,
      header('Subject', 'hi'),
      EOM,
    ])
    const final = out.at(-1)!
    assert.equal(final.type, 'replyCode')
    assert.match(final.type === 'replyCode' ? final.text : '', /^451 4\.4\.2 /)
    assert.ok(!out.some((r) => r.type === 'addHeader'), 'no edit of a check that cannot stand')
  })

  it('handles a second message on the same connection, forgetting the first', async () => {
    const seen: Seen[] = []
    const s = session(handler({}, seen))
    await run(s, [OFFER, connect, mail, rcpt, header('A', '1'), EOM, { type: 'abort' }])
    await run(s, [{ type: 'mail', args: ['<c@example.org>'] }, rcpt, header('B', '2'), EOM])
    const tx = seen[1]!.tx!
    assert.equal(tx.sender, '<c@example.org>')
    assert.deepEqual(tx.headers, [{ name: 'B', value: '2' }])
  })

  it('ABORT resets to before MAIL and drops the transaction macros, keeping the connection ones', async () => {
    const s = session(handler())
    await run(s, [
      OFFER,
      macro(Cmd.connect, ['j', 'mx']),
      connect,
      macro(Cmd.mail, ['{mail_addr}', 'a@x']),
      mail,
      { type: 'abort' },
    ])
    assert.equal(s.transaction, undefined)
    assert.equal(s.macros.get('{mail_addr}'), undefined)
    assert.equal(s.macros.get('j'), 'mx')
    await assert.doesNotReject(run(s, [mail]))
  })

  it('QUIT_NC starts a new connection on the same socket', async () => {
    const s = session(handler())
    await run(s, [OFFER, connect, { type: 'helo', name: 'a' }, { type: 'quitNewConnection' }])
    assert.equal(s.helo, undefined)
    await assert.doesNotReject(run(s, [connect]))
  })

  it('QUIT closes the session; anything after is out of order', async () => {
    const s = session(handler())
    await run(s, [OFFER, connect, { type: 'quit' }])
    assert.equal(s.closed, true)
    assert.throws(() => s.handle({ type: 'abort' }), MilterProtocolError)
  })

  const outOfOrder: Array<[string, MilterCommand[]]> = [
    ['a command before OPTNEG', [connect]],
    ['OPTNEG twice', [OFFER, OFFER]],
    ['CONNECT twice', [OFFER, connect, connect]],
    ['MAIL before CONNECT', [OFFER, mail]],
    ['RCPT before MAIL', [OFFER, connect, rcpt]],
    ['MAIL twice without ABORT', [OFFER, connect, mail, mail]],
    ['HELO inside a transaction', [OFFER, connect, mail, { type: 'helo', name: 'x' }]],
    ['RCPT after a header', [OFFER, connect, mail, header('A', 'b'), rcpt]],
    ['a header after end of headers', [OFFER, connect, mail, { type: 'eoh' }, header('A', 'b')]],
    [
      'a header after body',
      [OFFER, connect, mail, { type: 'body', chunk: Buffer.from('x') }, header('A', 'b')],
    ],
    ['BODY before MAIL', [OFFER, connect, { type: 'body', chunk: Buffer.from('x') }]],
    ['end of message before MAIL', [OFFER, connect, EOM]],
  ]
  for (const [name, cmds] of outOfOrder) {
    it(`refuses ${name} with a stage_order error`, async () => {
      const s = session(handler())
      await assert.rejects(
        run(s, cmds),
        (e: unknown) => e instanceof MilterProtocolError && ['stage_order'].includes(e.reason),
      )
    })
  }

  it('answers 451 4.3.0 when the handler throws, never an accept', async () => {
    const errors: string[] = []
    const s = new MilterSession(
      handler({
        async endOfMessage() {
          throw new Error('boom')
        },
      }),
      { id: 1, log: silentLogger, onInternalError: (stage) => errors.push(stage) },
    )
    const out = await run(s, [OFFER, connect, mail, rcpt, EOM])
    assert.equal(out.length, 2)
    assert.deepEqual(out[1], {
      type: 'replyCode',
      text: '451 4.3.0 linksec could not check this message; please try again later',
    })
    assert.deepEqual(errors, ['endOfMessage'])
  })

  it('drops modifications that were not negotiated (Postfix would drop the connection)', async () => {
    const s = session(
      handler({
        async endOfMessage() {
          return {
            modifications: [{ type: 'replaceBody', chunk: Buffer.from('x') }],
            final: { type: 'continue' },
          }
        },
      }),
    )
    const out = await run(s, [OFFER, connect, mail, EOM])
    assert.deepEqual(
      out.map((r) => r.type),
      ['optneg', 'continue'],
    )
  })

  it('asks the handler at events it decides, and replies continue where it only observes but must reply', async () => {
    const needs: HandlerNeeds = { ...OBSERVE_ALL, events: { ...OBSERVE_ALL.events, rcpt: 'decide' } }
    const asked: string[] = []
    const s = session(
      handler({
        needs,
        decide(event, facts) {
          asked.push(`${event}:${facts.transaction?.recipients.at(-1)?.address}`)
          return { type: 'replyCode', text: '550 5.7.10 no' }
        },
      }),
    )
    // An MTA that offers no NR_* flags: every sent event needs a reply.
    const out = await run(s, [
      { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x7f },
      connect,
      mail,
      rcpt,
    ])
    assert.deepEqual(out, [
      out[0],
      { type: 'continue' },
      { type: 'continue' },
      { type: 'replyCode', text: '550 5.7.10 no' },
    ])
    assert.deepEqual(asked, ['rcpt:<b@example.net>'])
  })

  it('keeps the body up to the cap, counts the rest, and asks the MTA to skip the rest', async () => {
    let facts: SessionFacts['transaction']
    const needs: HandlerNeeds = { ...OBSERVE_ALL, events: { ...OBSERVE_ALL.events, body: 'observe' } }
    const s = session(
      handler({
        needs,
        maxBodyBytes: 5,
        async endOfMessage(f) {
          facts = structuredClone(f.transaction)
          return { modifications: [], final: { type: 'continue' } }
        },
      }),
    )
    // Offer SKIP but not NR_BODY, so each chunk gets a reply.
    const out = await run(s, [
      { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x7f | Proto.skip },
      connect,
      mail,
      { type: 'body', chunk: Buffer.from('abc') },
      { type: 'body', chunk: Buffer.from('defg') },
      EOM,
    ])
    assert.deepEqual(
      out.slice(-3).map((r) => r.type),
      ['continue', 'skip', 'continue'],
    )
    assert.equal(Buffer.concat(facts!.body.map((b) => Buffer.from(b))).toString(), 'abc')
    assert.equal(facts!.bodyBytes, 7)
    assert.equal(facts!.bodyTruncated, true)
  })
})
