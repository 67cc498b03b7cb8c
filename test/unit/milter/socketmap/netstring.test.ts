import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  decodeNetstring,
  encodeNetstring,
  NetstringDecoder,
  NetstringError,
} from '../../../../milter/socketmap/netstring'

test('encode: length in bytes, not characters', () => {
  assert.equal(encodeNetstring('linksec example.com').toString(), '19:linksec example.com,')
  assert.equal(encodeNetstring('').toString(), '0:,')
  assert.equal(encodeNetstring('é').toString('latin1'), '2:\xc3\xa9,')
})

test('decode: every split of a stream of requests yields the same payloads', () => {
  const stream = Buffer.concat(
    ['linksec a.example', 'linksec [mx.b.example]:25', '', 'x'].map((s) => encodeNetstring(s)),
  )
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new NetstringDecoder()
    const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))].map(String)
    assert.deepEqual(got, ['linksec a.example', 'linksec [mx.b.example]:25', '', 'x'], `cut at ${cut}`)
    assert.equal(d.pending, 0)
  }
  const d = new NetstringDecoder()
  const oneByOne = [...stream].flatMap((b) => d.push(Buffer.from([b]))).map(String)
  assert.equal(oneByOne.length, 4)
})

test('decode: framing errors and the length cap', () => {
  const cases: [string, RegExp][] = [
    ['x:abc,', /not a decimal/],
    [':abc,', /without a length/],
    ['3:abc;', /does not end with ","/],
    ['03:abc,', /leading zero/],
    ['10001:', /exceeds 10000/],
    ['999999', /longer than 10000/],
  ]
  for (const [input, why] of cases) {
    const d = new NetstringDecoder(10_000)
    assert.throws(
      () => d.push(Buffer.from(input)),
      (e: unknown) => e instanceof NetstringError && why.test(e.message),
      input,
    )
    assert.throws(() => d.push(Buffer.from('1:a,')), NetstringError, 'a broken stream stays broken')
  }
  assert.throws(() => decodeNetstring(Buffer.from('1:a,1:b,')), /exactly one/)
  assert.equal(new NetstringDecoder(10).push(Buffer.from('9')).length, 0, 'a partial length waits for more')
  assert.throws(() => new NetstringDecoder(10).push(Buffer.from('99:')), /exceeds 10/)
})

test('property: decode(encode(x)) = x under any chunking; random bytes give payloads or NetstringError', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
      fc.array(fc.nat(2000), { maxLength: 6 }),
      (payloads, cuts) => {
        const stream = Buffer.concat(payloads.map((p) => encodeNetstring(Buffer.from(p))))
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
        const d = new NetstringDecoder(1000)
        const out: Buffer[] = []
        let at = 0
        for (const p of [...points, stream.length]) {
          out.push(...d.push(stream.subarray(at, p)))
          at = p
        }
        assert.deepEqual(
          out.map((b) => b.toString('hex')),
          payloads.map((p) => Buffer.from(p).toString('hex')),
        )
      },
    ),
  )
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        new NetstringDecoder(100).push(Buffer.from(bytes))
      } catch (e) {
        assert.ok(e instanceof NetstringError)
      }
    }),
  )
})
