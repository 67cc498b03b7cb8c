import * as dnsPacket from 'dns-packet'
import { isLinksecError } from '../../../core/errors'
import { judgeReply, type Expected } from '../../../core/net/dns-wire'
import type { DnsType } from '../../../core/net/types'
import type { FuzzTarget } from '../run'

const TYPES: DnsType[] = ['A', 'AAAA', 'MX', 'TXT', 'TLSA', 'OPENPGPKEY', 'CNAME']
const NAME = 'x.example.test'

/** A well-formed reply to seed mutation from. */
export function seedReply(type: DnsType, answers: unknown[]): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: 0x1234,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [
      {
        name: NAME,
        type: (type === 'OPENPGPKEY' ? 'UNKNOWN_61' : type) as dnsPacket.RecordType,
        class: 'IN',
      },
    ],
    answers: answers as dnsPacket.Answer[],
  })
}

const rr = (type: string, data: unknown, name = NAME) => ({ name, type, class: 'IN', ttl: 60, data })

export function seeds(): Buffer[] {
  return [
    seedReply('A', [rr('A', '192.0.2.1')]),
    seedReply('AAAA', [rr('AAAA', '2001:db8::1')]),
    seedReply('MX', [rr('MX', { preference: 10, exchange: 'mx.example.test' })]),
    seedReply('TXT', [rr('TXT', [Buffer.from('v=STSv1; '), Buffer.from('id=1')])]),
    seedReply('TLSA', [
      rr('TLSA', { usage: 3, selector: 1, matchingType: 1, certificate: Buffer.alloc(32, 7) }),
    ]),
    seedReply('OPENPGPKEY', [rr('UNKNOWN_61', Buffer.alloc(64, 9))]),
    seedReply('A', [rr('CNAME', 'y.example.test'), rr('A', '192.0.2.2', 'y.example.test')]),
  ]
}

/**
 * Replies come from the network: any bytes must give a judgement or a
 * LinksecError (LINKSEC_DNS_MALFORMED), never another exception. The id is
 * taken from the input so decoding is reached; the question type comes from
 * the seed's own type byte so every record parser is exercised.
 */
export const target: FuzzTarget = {
  name: 'dns-reply',
  seeds,
  fuzzOne(input) {
    const id = input.length >= 2 ? input.readUInt16BE(0) : 0
    for (const type of TYPES) {
      const expected: Expected = { id, name: NAME, type }
      judgeReply(input, expected)
    }
  },
  isExpectedError: (e) => isLinksecError(e) && e.code === 'LINKSEC_DNS_MALFORMED',
}
