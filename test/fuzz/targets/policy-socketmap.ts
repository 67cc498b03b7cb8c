import { parseNextHop } from '../../../core/policy/domain'
import { parseStsPolicy, parseStsTxt } from '../../../core/policy/mta-sts-parse'
import { parseStaticEntry } from '../../../core/policy/static-list'
import { NetstringDecoder, NetstringError } from '../../../milter/socketmap/netstring'
import { parseRequest } from '../../../milter/socketmap/tls-policy'
import type { FuzzTarget } from '../run'

/**
 * Socketmap requests and MTA-STS/static policy text come from strangers:
 * the netstring decoder and request parser may only throw NetstringError;
 * the policy parsers must return a value, never throw.
 */
export const target: FuzzTarget = {
  name: 'policy-socketmap',
  seeds: () =>
    [
      '19:linksec example.com,',
      '27:linksec [mx.example.com]:25,0:,',
      'version: STSv1\r\nmode: enforce\r\nmx: *.example.com\r\nmax_age: 86400\r\n',
      'v=STSv1; id=20240101T000000;',
      '{"mode":"enforce","mxs":[".example.net"],"level":3}',
    ].map((s) => Buffer.from(s)),
  fuzzOne(input) {
    const s = input.toString('latin1')
    parseStsPolicy(s)
    parseStsTxt([s])
    parseNextHop(s)
    try {
      parseStaticEntry(JSON.parse(s))
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e
    }
    const d = new NetstringDecoder(1000)
    for (let at = 0; at < input.length; at += 7) {
      for (const payload of d.push(input.subarray(at, at + 7))) parseRequest(payload)
    }
  },
  isExpectedError: (e) => e instanceof NetstringError,
}
