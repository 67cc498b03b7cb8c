/**
 * The key-server rule (core/keys/remote.ts, UnusableResult): what a key
 * server answers decides whether a key is available, never that the sender
 * signed falsely. Each row: a WKD answer (fake HTTPS client, no advanced
 * host), a message signed by alice's real key, and the result and action
 * verifyMessage reaches, with sig=optional and with sig=required.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../../../core/config'
import { LinksecError } from '../../../../core/errors'
import { parseAddress } from '../../../../core/keys/address'
import { createKeyFinder } from '../../../../core/keys/finder'
import { wkdUrls } from '../../../../core/keys/names'
import { KeyStore } from '../../../../core/keys/store'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import type { DnsClient, FetchResponse, HttpsClient } from '../../../../core/net/types'
import { createRuntime } from '../../../../core/runtime'
import { verifyMessage, type SignaturePolicy } from '../../../../core/verify'
import { assembleSigned, textPart } from '../../../helpers/signers'

const alice = parseAddress('alice@example.org')!
const url = wkdUrls(alice).direct
let dir: string
let key: openpgp.PrivateKey
let other: Buffer
let message: Buffer

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-keyserver-'))
  key = (await openpgp.generateKey({ userIDs: [{ email: alice.address }], format: 'object' })).privateKey
  other = Buffer.from(
    (await openpgp.generateKey({ userIDs: [{ email: 'mallory@example.org' }], format: 'binary' })).publicKey,
  )
  const inner = textPart('hello\n')
  const m = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message: m, signingKeys: key, detached: true })) as string
  message = assembleSigned({ from: `Alice <${alice.address}>` }, inner, sig)
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

type Answer = FetchResponse | LinksecError

async function run(answer: () => Answer, requirement: SignaturePolicy) {
  const dns: DnsClient = { query: async () => ({ rcode: 'NXDOMAIN', authenticated: false, records: [] }) }
  const https: HttpsClient = {
    async get(u) {
      const a = u === url ? answer() : { status: 404, headers: {}, body: Buffer.alloc(0), url: u }
      if (a instanceof LinksecError) throw a
      return a
    },
  }
  const finder = createKeyFinder({
    methods: ['wkd'],
    store: new KeyStore(path.join(dir, 'none')),
    remote: { dns, https },
    cacheMax: 10,
    positiveTtlMs: 1000,
    negativeTtlMs: 1000,
  })
  const rt = createRuntime(parseConfig({ main: { authserv_id: 'mx.test' } }, dir), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
  })
  return verifyMessage(rt, message, { finder, signaturePolicy: async () => requirement })
}

const served = (body: Buffer | string): Answer => ({
  status: 200,
  headers: {},
  body: Buffer.from(body),
  url,
})

test("the key-server table: the server's faults are never the sender's", async () => {
  const rows: [string, () => Answer, string, string, string][] = [
    // what the server answers, result, action with sig=optional, action with sig=required
    [
      '404',
      () => ({ status: 404, headers: {}, body: Buffer.alloc(0), url }),
      'neutral',
      'continue',
      'reject',
    ],
    [
      '503',
      () => ({ status: 503, headers: {}, body: Buffer.alloc(0), url }),
      'temperror',
      'tempfail',
      'tempfail',
    ],
    [
      'timeout',
      () => new LinksecError('LINKSEC_FETCH_TIMEOUT', 'no answer'),
      'temperror',
      'tempfail',
      'tempfail',
    ],
    ['garbage bytes', () => served('<html>it works</html>'), 'neutral', 'continue', 'reject'],
    ['a key without the address', () => served(other), 'neutral', 'continue', 'reject'],
    ["the address's key", () => served(Buffer.from(key.toPublic().write())), 'pass', 'continue', 'continue'],
  ]
  for (const [what, answer, result, optional, required] of rows) {
    const o = await run(answer, 'optional')
    assert.equal(o.result, result, `${what}: ${o.facts.reason}`)
    assert.equal(o.verdict.action, optional, `${what} (sig=optional)`)
    const r = await run(answer, 'required')
    assert.equal(r.verdict.action, required, `${what} (sig=required): ${r.verdict.text}`)
    if (result === 'neutral' && what !== '404') assert.match(o.facts.reason, /the key server's fault/)
  }
})
