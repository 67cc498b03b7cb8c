import { describe, it } from 'node:test'
import * as assert from 'node:assert/strict'
import * as fc from 'fast-check'
import * as dnsPacket from 'dns-packet'
import { isLinksecError } from '../../../../core/errors'
import { encodeQuery, judgeReply, normalizeName } from '../../../../core/net/dns-wire'
import { seedReply, seeds, target } from '../../../fuzz/targets/dns-reply'

const A = { id: 0x1234, name: 'x.example.test', type: 'A' as const }
const rr = (type: string, data: unknown, name = 'x.example.test') => ({
  name,
  type,
  class: 'IN',
  ttl: 60,
  data,
})

describe('DNS reply judgement', () => {
  it('ignores replies with another id, another question, or that are queries', () => {
    const good = seedReply('A', [rr('A', '192.0.2.1')])
    const otherId = Buffer.from(good)
    otherId.writeUInt16BE(0x4321, 0)
    assert.equal(judgeReply(otherId, A).kind, 'ignore')
    assert.equal(judgeReply(good, { ...A, name: 'y.example.test' }).kind, 'ignore')
    assert.equal(judgeReply(good, { ...A, type: 'AAAA' }).kind, 'ignore')
    assert.equal(judgeReply(encodeQuery(A), A).kind, 'ignore')
    assert.equal(judgeReply(Buffer.alloc(1), A).kind, 'ignore')
  })

  it('keeps only records of the asked type owned by the name or its CNAME chain', () => {
    const buf = seedReply('A', [
      rr('CNAME', 'y.example.test'),
      rr('A', '192.0.2.2', 'Y.Example.Test'),
      rr('A', '192.0.2.66', 'unrelated.example.test'),
      rr('AAAA', '2001:db8::1'),
    ])
    const j = judgeReply(buf, A)
    assert.ok(j.kind === 'reply')
    assert.deepEqual(j.records, [{ type: 'A', name: 'y.example.test', ttl: 60, address: '192.0.2.2' }])
    assert.equal(j.ad, true)
  })

  it('reports TC and returns no records from a truncated reply', () => {
    const tc = dnsPacket.encode({
      type: 'response',
      id: A.id,
      flags: dnsPacket.TRUNCATED_RESPONSE,
      questions: [{ name: A.name, type: 'A', class: 'IN' }],
      answers: [rr('A', '192.0.2.1') as dnsPacket.Answer],
    })
    const j = judgeReply(tc, A)
    assert.ok(j.kind === 'reply' && j.truncated && j.records.length === 0)
  })

  it('maps rcodes, unknown ones to OTHER', () => {
    const reply = (rcode: number) => {
      const b = seedReply('A', [])
      b.writeUInt16BE((b.readUInt16BE(2) & 0xfff0) | rcode, 2)
      return b
    }
    const rc = (n: number) => {
      const j = judgeReply(reply(n), A)
      return j.kind === 'reply' ? j.rcode : j.kind
    }
    assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map(rc), [
      'NOERROR',
      'FORMERR',
      'SERVFAIL',
      'NXDOMAIN',
      'NOTIMP',
      'REFUSED',
      'OTHER',
    ])
  })

  it('throws LINKSEC_DNS_MALFORMED for an undecodable reply with our id', () => {
    const cut = seedReply('A', [rr('A', '192.0.2.1')]).subarray(0, 20)
    assert.throws(() => judgeReply(cut, A), { code: 'LINKSEC_DNS_MALFORMED', temporary: true })
  })

  it('gives a judgement or LINKSEC_DNS_MALFORMED for any bytes (property)', () => {
    const all = seeds()
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc
            .tuple(fc.integer({ min: 0, max: all.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 255 }))
            .map(([s, at, v]) => {
              const b = Buffer.from(all[s]!)
              b[at % b.length] = v
              return b
            }),
        ),
        (bytes) => {
          try {
            const r = target.fuzzOne(Buffer.from(bytes))
            assert.ok(!(r instanceof Promise), 'the DNS target answers synchronously')
          } catch (e) {
            assert.ok(isLinksecError(e) && e.code === 'LINKSEC_DNS_MALFORMED', String(e))
          }
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('DNS names', () => {
  it('normalizes case and one trailing dot', () => {
    assert.equal(normalizeName('MTA-STS.Example.TEST.'), 'mta-sts.example.test')
  })
})
