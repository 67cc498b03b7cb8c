/**
 * plugins/body.ts on Haraka's own Transaction (node_modules/Haraka, its real
 * haraka-message-stream): the replaced body is what readers get back, byte
 * for byte, and the stream keeps SMTP's dot-stuffing (RFC 5321 §4.5.2) so
 * Haraka's outbound, which sends the stored lines as they are, delivers it
 * intact. The signed real-Haraka path: test/integration/sign-haraka.test.ts.
 */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import type { HarakaTransaction } from '../../../plugins/haraka'
import { replaceBody } from '../../../plugins/body'
import { captureBody, readMessage } from '../../../plugins/message'

interface Stream {
  get_data(cb: (b: Buffer) => void): void
  pipe(w: Writable, o: Record<string, unknown>): void
}
type Txn = HarakaTransaction & {
  message_stream: Stream
  add_data(l: Buffer): void
  end_data(cb: () => void): void
}

const haraka = require('Haraka/transaction') as { createTransaction: (id: string, cfg: object) => Txn }

/** A transaction filled as Haraka's DATA handler fills it: wire lines (dot-stuffed, CRLF). */
async function received(wire: string, opts: { capture?: boolean } = {}): Promise<Txn> {
  const txn = haraka.createTransaction('body-test', {})
  if (opts.capture) captureBody(txn)
  for (const line of wire.split(/(?<=\n)/)) txn.add_data(Buffer.from(line, 'latin1'))
  await new Promise<void>((resolve) => txn.end_data(resolve))
  return txn
}

const data = (txn: Txn) => new Promise<Buffer>((resolve) => txn.message_stream.get_data(resolve))

/** What outbound writes to its queue file and sends: the stored lines as they are. */
function wire(txn: Txn): Promise<Buffer> {
  const chunks: Buffer[] = []
  return new Promise((resolve) =>
    txn.message_stream.pipe(
      new Writable({
        write: (c: Buffer, _e, done) => (chunks.push(c), done()),
        final: (done) => (resolve(Buffer.concat(chunks)), done()),
      }),
      { dot_stuffed: false },
    ),
  )
}

const HEAD = 'From: <alice@sign.test>\r\nSubject: x\r\n\r\n'

describe('replaceBody on a real Haraka transaction', () => {
  it('readers get the new body byte for byte: dots, 8-bit bytes, trailing blanks, a bare LF, no final line end', async () => {
    const txn = await received(`${HEAD}..old\r\nbody\r\n`)
    assert.equal((await data(txn)).toString('latin1'), `${HEAD}.old\r\nbody\r\n`)
    const body = Buffer.from('.one\r\n..two\r\n.\r\nGr\xfc\xdfe  \r\nbare\nend\t', 'latin1')
    await replaceBody(txn, body)
    assert.deepEqual(await data(txn), Buffer.concat([Buffer.from(HEAD), body]))
  })

  it('the stored (outbound) form is dot-stuffed: a lone "." never ends DATA at the next hop', async () => {
    const txn = await received(`${HEAD}old\r\n`)
    await replaceBody(txn, Buffer.from('.one\r\n.\r\nlast\r\n'))
    assert.equal((await wire(txn)).toString(), `${HEAD}..one\r\n..\r\nlast\r\n`)
  })

  it('header fields are the transaction header_list (edits made before the replacement stay)', async () => {
    const txn = await received(`${HEAD}old\r\n`)
    ;(txn.header as unknown as { add(n: string, v: string): void }).add('X-Added', 'yes')
    await replaceBody(txn, Buffer.from('new\r\n'))
    assert.match((await data(txn)).toString(), /^X-Added: yes\r\n[\s\S]*\r\n\r\nnew\r\n$/)
  })
})

describe('readMessage on a real Haraka transaction', () => {
  it('is what get_data() gives, byte for byte: header lines with dots, folds, a bare LF, UTF-8, an added header, dot-stuffed body lines', async () => {
    const head =
      'From: <alice@sign.test>\r\nSubject: Gr\u00fc\u00dfe\r\n folded\r\n\t..dots\r\nX-Bare: a\nX-Dot: .x\r\n\r\n'
    const body = '..one\r\n...two\r\nplain\r\n\r\nlast'
    const txn = await received(Buffer.from(head + body).toString('latin1'))
    txn.add_leading_header('Received', 'from x by y')
    assert.ok(txn.header.header_list.length > 0)
    assert.deepEqual(await readMessage(txn), await data(txn))
    // A replaced body (the sign step's) is read the same way.
    await replaceBody(txn, Buffer.from('.a\r\nb\r\n'))
    assert.deepEqual(await readMessage(txn), await data(txn))
  })

  it('with the body kept since DATA (captureBody): the same bytes as get_data(), read once', async () => {
    const cases = [
      'From: <a@sign.test>\r\nX-Dot: .x\r\n\r\n..one\r\n...two\r\n.\r\nplain\r\n\r\nlast',
      // The header section ends at a bare LF line too (the stream's HeaderSkipper rule).
      'From: <a@sign.test>\r\n\n..body\r\n\r\nmore\n',
      // No blank line at all: Haraka's end_data splits the lines itself.
      'From: <a@sign.test>\r\nnot a header line\r\n..dots\r\n',
      // 8-bit bytes, bare LFs and a body line of only dots.
      'Subject: x\r\n\r\nGr\xfc\xdfe\n...\r\n..\r\nend',
    ]
    for (const wire of cases) {
      const kept = await received(wire, { capture: true })
      const plain = await received(wire)
      const want = await readMessage(plain)
      assert.deepEqual(await readMessage(kept), want, JSON.stringify(wire))
      assert.deepEqual(await readMessage(kept), want, 'a second read goes through the stream, same bytes')
      assert.deepEqual(want, await data(plain))
    }
  })

  it('a kept body gives way to the stream: a replaced body, a body over 256 KiB', async () => {
    const txn = await received(`${HEAD}old\r\n`, { capture: true })
    await replaceBody(txn, Buffer.from('.a\r\nb\r\n'))
    assert.equal((await readMessage(txn)).toString(), `${HEAD}.a\r\nb\r\n`)
    const big = `${'x'.repeat(998)}\r\n`.repeat(1100)
    const large = await received(`${HEAD}${big}`, { capture: true })
    assert.equal((await readMessage(large)).toString(), `${HEAD}${big}`)
  })

  it('a message without a header section is read whole', async () => {
    const txn = await received('\r\n..body\r\n')
    assert.equal(txn.header.header_list.length, 0)
    assert.deepEqual(await readMessage(txn), await data(txn))
  })
})
