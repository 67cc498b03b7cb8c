/**
 * Broken MIME and armor from strangers: verifyMessage must answer every
 * input with a result (permerror, neutral, none, fail, ...) and a verdict,
 * never throw. Seeds are a PGP/MIME and an inline-signed message whose key is
 * in the local store, so mutations also reach the signature checks. No
 * network: keys come from the local store only and the sender policy is fixed.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { parseConfig } from '../../../core/config'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime, type Runtime } from '../../../core/runtime'
import { verifyMessage } from '../../../core/verify'
import type { FuzzTarget } from '../run'

const FIXTURES = path.resolve(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'verify')
const RESULTS = new Set(['pass', 'fail', 'none', 'neutral', 'temperror', 'permerror'])
let rt: Runtime | undefined

function runtime(): Runtime {
  rt ??= createRuntime(
    parseConfig({ main: { authserv_id: 'mx.fuzz' }, keys: { methods: 'local', dir: FIXTURES } }, FIXTURES),
    { log: silentLogger, metrics: createMetrics({ processMetrics: false }) },
  )
  return rt
}

export const target: FuzzTarget = {
  name: 'verify-mime',
  seeds: () => [
    ...['pgp-mime.eml', 'inline.eml'].map((f) => fs.readFileSync(path.join(FIXTURES, f))),
    Buffer.from(
      'From: a@example.org\r\nContent-Type: multipart/signed; protocol="application/pgp-signature"; boundary=b\r\n\r\n--b\r\nx\r\n--b\r\n\r\n--b--\r\n',
    ),
  ],
  async fuzzOne(input) {
    const d = await verifyMessage(runtime(), input, { signaturePolicy: async () => 'optional' })
    if (!RESULTS.has(d.result)) throw new Error(`unknown result ${d.result}`)
    if (d.result === 'temperror' && /TypeError|RangeError|undefined/.test(d.facts.reason))
      throw new Error(`an internal error became temperror: ${d.facts.reason}`)
  },
  isExpectedError: () => false,
}
