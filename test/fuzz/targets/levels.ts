import {
  parseTxtRecord,
  parseEhloKeyword,
  parseBannerToken,
  parseRequirementHeader,
} from '../../../core/levels'
import type { FuzzTarget } from '../run'

/** Declarations come from strangers: every parser must return a value, never throw. */
export const target: FuzzTarget = {
  name: 'levels',
  seeds: () =>
    [
      'v=LINKSEC1; level=3; ttl=86400; sig=required',
      'LINKSEC 4 ttl=3600',
      'mx ESMTP LINKSEC=3',
      '2 (tagged)',
    ].map((s) => Buffer.from(s)),
  fuzzOne(input) {
    const s = input.toString('latin1')
    parseTxtRecord(s)
    parseEhloKeyword(s)
    parseBannerToken(s)
    parseRequirementHeader(s)
  },
  isExpectedError: () => false,
}
