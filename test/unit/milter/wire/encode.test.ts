import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeAll, encodeCommand, encodeResponse } from '../../../../milter/wire/encode'

const hex = (b: Buffer) => b.toString('hex')

describe('milter response encoding (byte table)', () => {
  const table: Array<[string, Parameters<typeof encodeResponse>[0], string]> = [
    ['continue', { type: 'continue' }, '0000000163'],
    ['accept', { type: 'accept' }, '0000000161'],
    ['tempfail', { type: 'tempfail' }, '0000000174'],
    ['progress', { type: 'progress' }, '0000000170'],
    ['skip', { type: 'skip' }, '0000000173'],
    ['shutdown', { type: 'shutdown' }, '0000000134'],
    [
      'optneg',
      { type: 'optneg', version: 6, actions: 0x31, protocol: 0x4f6be, symbolLists: [] },
      '0000000d4f' + '00000006' + '00000031' + '0004f6be',
    ],
    [
      'insert header at 0',
      { type: 'insertHeader', index: 0, name: 'A', value: 'b' },
      '0000000969' + '00000000' + '4100' + '6200',
    ],
    [
      'change header (delete)',
      { type: 'changeHeader', index: 3, name: 'A', value: '' },
      '000000086d' + '00000003' + '4100' + '00',
    ],
    ['add header', { type: 'addHeader', name: 'X', value: 'y' }, '0000000568' + '5800' + '7900'],
    [
      'reply code',
      { type: 'replyCode', text: '550 5.7.10 no' },
      '0000000f79' + Buffer.from('550 5.7.10 no\0').toString('hex'),
    ],
    ['quarantine', { type: 'quarantine', reason: 'r' }, '0000000371' + '7200'],
    ['replace body', { type: 'replaceBody', chunk: Buffer.from('ab') }, '0000000362' + '6162'],
    ['delete recipient', { type: 'deleteRecipient', recipient: '<a>' }, '000000052d' + '3c613e00'],
    [
      'change sender with args',
      { type: 'changeSender', sender: '<a>', args: 'X=1' },
      '0000000965' + '3c613e00' + '583d3100',
    ],
  ]
  for (const [name, resp, want] of table) {
    it(name, () => assert.equal(hex(encodeResponse(resp)), want))
  }

  it('refuses a string with NUL inside (it would end the field early)', () => {
    assert.throws(() => encodeResponse({ type: 'addHeader', name: 'X', value: 'a\0b' }), RangeError)
  })

  it('joins a batch into one buffer in order', () => {
    const batch = encodeAll(
      [{ type: 'addHeader', name: 'X', value: 'y' }, { type: 'accept' }],
      encodeResponse,
    )
    assert.equal(hex(batch), '0000000568580079000000000161')
  })
})

describe('milter command encoding', () => {
  it('encodes CONNECT for every family', () => {
    assert.equal(
      hex(encodeCommand({ type: 'connect', host: 'h', family: 'unknown' })),
      '0000000443' + '680055',
    )
    assert.equal(
      hex(encodeCommand({ type: 'connect', host: 'h', family: 'inet4', port: 25, address: '1.2.3.4' })),
      '0000000e43' + '6800' + '34' + '0019' + Buffer.from('1.2.3.4\0').toString('hex'),
    )
  })

  it('encodes MACRO as command code then name/value pairs', () => {
    assert.equal(
      hex(encodeCommand({ type: 'macro', command: 0x4d, macros: [['i', 'Q1']] })),
      '0000000744' + '4d' + '6900' + '513100',
    )
  })
})
