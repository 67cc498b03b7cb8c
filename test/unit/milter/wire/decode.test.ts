import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CommandDecoder, FrameDecoder, ResponseDecoder, decodeCommand } from '../../../../milter/wire/decode'
import { MilterProtocolError } from '../../../../milter/wire/errors'
import type { MilterCommand } from '../../../../milter/wire/types'

/** A frame from its command letter and payload (hex or text with \0). */
function raw(code: string, payload: Buffer | string = ''): Buffer {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'latin1')
  const head = Buffer.alloc(5)
  head.writeUInt32BE(data.length + 1)
  head[4] = code.charCodeAt(0)
  return Buffer.concat([head, data])
}
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')

/** Byte table: what Postfix 3.7 sends, and what it must decode to. */
const COMMANDS: Array<[string, Buffer, MilterCommand]> = [
  [
    'OPTNEG offer',
    hex('0000000d 4f 00000006 000001ff 001fffff'),
    { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff },
  ],
  [
    'MACRO for CONNECT',
    raw('D', 'Cj\0mta.example.test\0{daemon_addr}\x00127.0.0.1\0'),
    {
      type: 'macro',
      command: 0x43,
      macros: [
        ['j', 'mta.example.test'],
        ['{daemon_addr}', '127.0.0.1'],
      ],
    },
  ],
  ['empty MACRO for HELO', raw('D', 'H'), { type: 'macro', command: 0x48, macros: [] }],
  [
    'CONNECT inet4',
    raw('C', Buffer.concat([Buffer.from('localhost\x004'), hex('a988'), Buffer.from('127.0.0.1\0')])),
    { type: 'connect', host: 'localhost', family: 'inet4', port: 43400, address: '127.0.0.1' },
  ],
  [
    'CONNECT inet6',
    raw('C', Buffer.concat([Buffer.from('[::1]\x006'), hex('0019'), Buffer.from('::1\0')])),
    { type: 'connect', host: '[::1]', family: 'inet6', port: 25, address: '::1' },
  ],
  [
    'CONNECT unix',
    raw('C', Buffer.concat([Buffer.from('localhost\0L'), hex('0000'), Buffer.from('/run/smtp.sock\0')])),
    { type: 'connect', host: 'localhost', family: 'unix', port: 0, address: '/run/smtp.sock' },
  ],
  ['CONNECT unknown family', raw('C', 'unknown\0U'), { type: 'connect', host: 'unknown', family: 'unknown' }],
  ['HELO', raw('H', 'client.example.test\0'), { type: 'helo', name: 'client.example.test' }],
  [
    'MAIL with ESMTP args',
    raw('M', '<a@example.org>\0BODY=8BITMIME\0SIZE=100\0'),
    { type: 'mail', args: ['<a@example.org>', 'BODY=8BITMIME', 'SIZE=100'] },
  ],
  ['MAIL null sender', raw('M', '<>\0'), { type: 'mail', args: ['<>'] }],
  [
    'RCPT',
    raw('R', '<b@example.net>\0NOTIFY=NEVER\0'),
    { type: 'rcpt', args: ['<b@example.net>', 'NOTIFY=NEVER'] },
  ],
  ['DATA', raw('T'), { type: 'data' }],
  ['HEADER', raw('L', 'Subject\0hi there\0'), { type: 'header', name: 'Subject', value: 'hi there' }],
  ['HEADER empty value', raw('L', 'X-Empty\0\0'), { type: 'header', name: 'X-Empty', value: '' }],
  [
    'HEADER folded, UTF-8',
    raw('L', Buffer.from('Subject\0Gr\u00fc\u00dfe\n\tmore\0', 'utf8')),
    { type: 'header', name: 'Subject', value: 'Gr\u00fc\u00dfe\n\tmore' },
  ],
  ['EOH', raw('N'), { type: 'eoh' }],
  ['BODY', raw('B', 'Hello\r\n\0bytes\r\n'), { type: 'body', chunk: Buffer.from('Hello\r\n\0bytes\r\n') }],
  ['BODYEOB', raw('E'), { type: 'endOfMessage', chunk: Buffer.alloc(0) }],
  ['UNKNOWN', raw('U', 'XYZZY foo\0'), { type: 'unknown', command: 'XYZZY foo' }],
  ['ABORT', raw('A'), { type: 'abort' }],
  ['QUIT', raw('Q'), { type: 'quit' }],
  ['QUIT_NC', raw('K'), { type: 'quitNewConnection' }],
]

describe('milter command decoding (byte table)', () => {
  for (const [name, bytes, want] of COMMANDS) {
    it(`${name}: whole, and split at every offset`, () => {
      assert.deepEqual(new CommandDecoder(1 << 20).push(bytes), [want])
      for (let at = 0; at <= bytes.length; at++) {
        const d = new CommandDecoder(1 << 20)
        const got = [...d.push(bytes.subarray(0, at)), ...d.push(bytes.subarray(at))]
        assert.deepEqual(got, [want], `split at ${at}`)
        assert.equal(d.pendingBytes, 0)
      }
    })
  }

  it('decodes a whole recorded conversation fed one byte at a time', () => {
    const all = Buffer.concat(COMMANDS.map(([, b]) => b))
    const d = new CommandDecoder(1 << 20)
    const got: MilterCommand[] = []
    for (const byte of all) got.push(...d.push(Buffer.from([byte])))
    assert.deepEqual(
      got,
      COMMANDS.map(([, , c]) => c),
    )
  })
})

describe('milter frames and the reads they came in', () => {
  // Postfix sends body chunks of 65,535 bytes (frames of 65,540); a socket read is at most 65,536.
  const body = (fill: number) => raw('B', Buffer.alloc(65535, fill))

  it('a frame that spans reads owns a buffer of its own size, whatever the reads were', () => {
    const stream = Buffer.concat([body(1), body(2), body(3), body(4)])
    const d = new FrameDecoder(1 << 20)
    const frames = []
    for (let at = 0; at < stream.length; at += 65536) frames.push(...d.push(stream.subarray(at, at + 65536)))
    assert.equal(frames.length, 4)
    assert.equal(d.pendingBytes, 0)
    frames.forEach((f, i) => {
      assert.equal(f.payload.length, 65535)
      assert.ok(
        f.payload.every((b) => b === i + 1),
        `frame ${i} bytes`,
      )
      // One frame's bytes (and its 1-byte command code), not the read before or after it.
      assert.ok(f.payload.buffer.byteLength <= 65536, `frame ${i} holds ${f.payload.buffer.byteLength} bytes`)
    })
  })

  it('counts the bytes of a frame still under way, its length field included', () => {
    const d = new FrameDecoder(1 << 20)
    const frame = body(7)
    assert.deepEqual(d.push(frame.subarray(0, 2)), [])
    assert.equal(d.pendingBytes, 2)
    assert.deepEqual(d.push(frame.subarray(2, 1000)), [])
    assert.equal(d.pendingBytes, 1000)
    // Dripped a byte at a time for a while (pieces are joined as they pile up), then the rest.
    for (let at = 1000; at < 1300; at++) d.push(frame.subarray(at, at + 1))
    assert.equal(d.pendingBytes, 1300)
    const [f] = d.push(frame.subarray(1300))
    assert.equal(f?.payload.length, 65535)
    assert.ok(f?.payload.every((b) => b === 7))
    assert.equal(d.pendingBytes, 0)
  })
})

function protocolError(reason: string) {
  return (e: unknown) => e instanceof MilterProtocolError && e.reason === reason
}

describe('milter frame faults', () => {
  it('refuses a zero length', () => {
    assert.throws(() => new FrameDecoder(100).push(hex('00000000')), protocolError('empty_frame'))
  })

  it('refuses an oversized length from the 4-byte prefix alone, before any payload arrives', () => {
    const d = new FrameDecoder(1024)
    assert.throws(() => d.push(hex('7fffffff')), protocolError('oversized_frame'))
  })

  it('accepts a frame exactly at the cap', () => {
    const frame = raw('B', Buffer.alloc(1023))
    assert.equal(new FrameDecoder(1024).push(frame).length, 1)
    assert.throws(() => new FrameDecoder(1023).push(frame), protocolError('oversized_frame'))
  })

  it('is unusable after an error (the connection is closed anyway)', () => {
    const d = new FrameDecoder(100)
    assert.throws(() => d.push(hex('00000000')))
    assert.throws(() => d.push(raw('A')), MilterProtocolError)
  })

  const malformed: Array<[string, Buffer, string]> = [
    ['unknown command code', raw('Z'), 'unknown_command'],
    ['HELO without NUL', raw('H', 'client'), 'malformed_frame'],
    ['HEADER with one string', raw('L', 'Subject\0'), 'malformed_frame'],
    ['HEADER with trailing bytes', raw('L', 'Subject\0x\0y'), 'malformed_frame'],
    ['MACRO with odd strings', raw('D', 'Cj\0'), 'malformed_frame'],
    ['MACRO without command code', raw('D'), 'malformed_frame'],
    ['MAIL without address', raw('M'), 'malformed_frame'],
    ['CONNECT with bad family', raw('C', 'h\0X'), 'malformed_frame'],
    ['CONNECT inet4 without port', raw('C', 'h\x004'), 'malformed_frame'],
    [
      'CONNECT inet4 address without NUL',
      raw('C', Buffer.concat([Buffer.from('h\x004'), hex('0019'), Buffer.from('1.2')])),
      'malformed_frame',
    ],
    ['OPTNEG too short', raw('O', hex('00000006')), 'malformed_frame'],
    ['OPTNEG too long', raw('O', hex('00000006 000001ff 001fffff 00')), 'malformed_frame'],
    ['DATA with payload', raw('T', 'x'), 'malformed_frame'],
  ]
  for (const [name, bytes, reason] of malformed) {
    it(`${name} -> ${reason}`, () => {
      assert.throws(
        () => decodeCommand({ code: bytes[4]!, payload: bytes.subarray(5) }),
        protocolError(reason),
      )
    })
  }
})

describe('milter response decoding', () => {
  it('reads an OPTNEG reply with symbol lists and the end-of-message actions', () => {
    const bytes = Buffer.concat([
      raw(
        'O',
        Buffer.concat([
          hex('00000006 00000011 000ff0b0'),
          hex('00000001'),
          Buffer.from('{tls_version} {cipher}\0'),
        ]),
      ),
      raw('i', Buffer.concat([hex('00000000'), Buffer.from('Authentication-Results\0mx; x-tls=none\0')])),
      raw('m', Buffer.concat([hex('00000002'), Buffer.from('Authentication-Results\0\0')])),
      raw('y', '550 5.7.10 no\0'),
      raw('e', '<x@y>\0'),
      raw('2', '<r@y>\0NOTIFY=NEVER\0'),
    ])
    assert.deepEqual(new ResponseDecoder(1 << 20).push(bytes), [
      {
        type: 'optneg',
        version: 6,
        actions: 0x11,
        protocol: 0xff0b0,
        symbolLists: [{ stage: 1, macros: '{tls_version} {cipher}' }],
      },
      { type: 'insertHeader', index: 0, name: 'Authentication-Results', value: 'mx; x-tls=none' },
      { type: 'changeHeader', index: 2, name: 'Authentication-Results', value: '' },
      { type: 'replyCode', text: '550 5.7.10 no' },
      { type: 'changeSender', sender: '<x@y>' },
      { type: 'addRecipientWithArgs', recipient: '<r@y>', args: 'NOTIFY=NEVER' },
    ])
  })
})
