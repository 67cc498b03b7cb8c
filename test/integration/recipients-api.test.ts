/**
 * GET /v1/recipients/<address> through a real `linksec serve` against the
 * loopback DNS + HTTPS world: a domain with `_linksec` level 3 and a WKD
 * key, one with MTA-STS only, one that publishes nothing — each matching
 * `linksec check --json` for its domain — then hostile input (no @, too
 * long, unicode, controls, bad percent-encoding) and the rate limit. Then
 * a real Haraka whose own web server is on (http.ini + express): the same
 * routes (core/http/routes.ts) answer there with the same JSON as
 * `linksec serve`, the same rate limit, and /v1/domains.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseAddress, wkdHash } from '../../core/keys'
import { request, type Reply } from '../unit/core/http/helpers'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { freePort, waitForPort } from '../helpers/ports'
import { needTools } from '../helpers/tools'
import { startLinksecServe, type ServeInstance } from '../helpers/postfix'
import * as S from '../helpers/signers'
import { startWorld, type World } from '../helpers/world'

interface PolicyJson {
  [k: string]: unknown
  sources: Record<string, unknown>[]
}
interface Answer {
  address: string
  advice: string
  level: number
  tls: { mode: string; source: string; mxPatterns: string[] }
  sig: string
  key: { published: boolean; outcome: string; fingerprint?: string; source?: string; reason: string }
  policy: PolicyJson
}

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')

function linksec(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => resolve({ code, out, err }))
  })
}

describe('GET /v1/recipients/<address> on linksec serve', { skip: S.missingSigners(['gpg']) }, () => {
  let kit: S.SignerKit
  let alice: S.TestSigner
  let world: World
  let serve: ServeInstance | undefined
  let limited: ServeInstance | undefined
  let port: number
  let ini: Record<string, Record<string, string | number | boolean>>

  const ask = (p: string, on = port): Promise<Reply> => request(on, p)
  const json = (r: Reply) => JSON.parse(r.body) as Answer

  before(async () => {
    kit = new S.SignerKit()
    alice = kit.gpg({ address: 'alice@l3.test', name: 'Alice' })
    const a = parseAddress(alice.address)!
    world = await startWorld({
      zone: {
        '_linksec.l3.test': { TXT: ['v=LINKSEC1; level=3; ttl=3600; sig=required'] },
        '_mta-sts.sts.test': { TXT: ['v=STSv1; id=1;'] },
      },
      hosts: ['openpgpkey.l3.test', 'mta-sts.sts.test'],
      routes: {
        [`openpgpkey.l3.test/.well-known/openpgpkey/l3.test/hu/${wkdHash(a.local)}`]: {
          body: alice.publicKey(),
        },
        'mta-sts.sts.test/.well-known/mta-sts.txt': {
          body: 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 600\n',
        },
      },
    })
    ini = {
      log: { level: 'warn' },
      resolver: { servers: world.dns.address, timeout_ms: 2000 },
      net: {
        ca_file: world.ca.caFile,
        https_port: world.https.port,
        allow_private_addresses: true,
        timeout_ms: 10000,
      },
      keys: { methods: 'wkd' },
      policy: { dane: false },
    }
    serve = await startLinksecServe({ ini })
    port = Number(serve.httpAddress.split(':').pop())
  })
  after(async () => {
    await serve?.stop()
    await limited?.stop()
    await world?.close()
    kit?.cleanup()
  })

  /** `linksec check --json` for the domain, against the same world and config. */
  const check = async (domain: string) => {
    const r = await linksec('check', domain, '--json', '--config', serve!.configDir)
    assert.ok(r.code === 0, r.err)
    return JSON.parse(r.out) as PolicyJson
  }
  const sameAsCheck = (got: Answer, want: PolicyJson) => {
    for (const k of ['domain', 'level', 'tlsMode', 'mxPatterns', 'signatures', 'decidedBy'])
      assert.deepEqual(got.policy[k], want[k], k)
    const rows = (x: PolicyJson) => x.sources.map((s) => [s.source, s.outcome, s.level, s.tlsMode, s.reason])
    assert.deepEqual(rows(got.policy), rows(want))
  }

  it('level 3 + WKD key: advice encrypt, the fingerprint, sig=required, as linksec check says', async () => {
    const r = await ask('/v1/recipients/alice@l3.test')
    assert.equal(r.status, 200, r.body)
    assert.match(String(r.headers['content-type']), /^application\/json/)
    const j = json(r)
    assert.equal(j.address, 'alice@l3.test')
    assert.equal(j.advice, 'encrypt')
    assert.equal(j.level, 3)
    assert.deepEqual(j.tls, { mode: 'encrypt', source: 'txt', mxPatterns: [], uncertain: false })
    assert.equal(j.sig, 'required')
    assert.equal(j.key.published, true)
    assert.equal(j.key.fingerprint, alice.fingerprint)
    assert.equal(j.key.source, 'wkd_advanced')
    sameAsCheck(j, await check('l3.test'))
  })

  it('the same domain, an address with no key: advice tagged, the key reason says none is published', async () => {
    const j = json(await ask('/v1/recipients/bob@l3.test'))
    assert.equal(j.advice, 'tagged')
    assert.equal(j.key.published, false)
    assert.equal(j.key.outcome, 'notfound')
    assert.match(j.key.reason, /no OpenPGP key is published for bob@l3\.test/)
  })

  it('MTA-STS only: level 3, TLS secure from mta_sts with its mx pattern, no key, as linksec check says', async () => {
    const j = json(await ask('/v1/recipients/carol@sts.test'))
    assert.equal(j.level, 3)
    assert.equal(j.tls.mode, 'secure')
    assert.equal(j.tls.source, 'mta_sts')
    assert.deepEqual(j.tls.mxPatterns, ['mx.sts.test'])
    assert.equal(j.key.published, false)
    assert.equal(j.advice, 'tagged')
    sameAsCheck(j, await check('sts.test'))
  })

  it('a domain that publishes nothing: level 0, advice notice, as linksec check says', async () => {
    const j = json(await ask('/v1/recipients/dave@none.test'))
    assert.equal(j.level, 0)
    assert.equal(j.tls.source, 'none')
    assert.equal(j.key.published, false)
    assert.equal(j.advice, 'notice')
    assert.equal(j.sig, 'unknown')
    sameAsCheck(j, await check('none.test'))
  })

  it('hostile addresses get 400 with a sentence, and serve keeps answering', async () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['no-at-sign', /has no @domain/],
      [encodeURIComponent(`${'a'.repeat(300)}@x.test`), /longer than 254 octets/],
      [encodeURIComponent('jörg@bücher.test'), /not ASCII.*A-label/],
      [encodeURIComponent('a\u0000b@x.test'), /is not an address/],
      ['a@b', /is not an address/],
      ['%E0%A4%A', /percent-encoded/],
      [encodeURIComponent('"a@b"@<script>.test'), /is not an address/],
    ]
    for (const [p, want] of cases) {
      const r = await ask(`/v1/recipients/${p}`)
      assert.equal(r.status, 400, `${p}: ${r.body}`)
      assert.match(r.body, want, p)
      assert.ok(!r.body.includes('\u0000'), 'controls are not echoed')
    }
    const long = await ask(`/v1/recipients/${'x'.repeat(6000)}@x.test`)
    assert.equal(long.status, 400)
    assert.equal((await ask('/healthz')).status, 200)
  })

  it('beyond the burst a client gets 429 with Retry-After', async () => {
    limited = await startLinksecServe({
      ini: { ...ini, http: { recipients_burst: 2, recipients_rate: 1 } },
    })
    const p = Number(limited.httpAddress.split(':').pop())
    assert.equal((await ask('/v1/recipients/dave@none.test', p)).status, 200)
    assert.equal((await ask('/v1/recipients/dave@none.test', p)).status, 200)
    const third = await ask('/v1/recipients/dave@none.test', p)
    assert.equal(third.status, 429)
    assert.ok(Number(third.headers['retry-after']) >= 1, String(third.headers['retry-after']))
    assert.match(third.body, /too many recipient look-ups from 127\.0\.0\.1/)
    // A bad address costs a token too: the bucket is taken before parsing.
    assert.equal((await ask('/v1/recipients/x', p)).status, 429)
    // Each answer is counted by status and advice on this serve's /metrics.
    const m = (await ask('/metrics', p)).body
    assert.match(m, /^linksec_recipient_requests_total\{status="200",advice="notice"\} 2$/m)
    assert.match(m, /^linksec_recipient_requests_total\{status="429",advice="none"\} 2$/m)
  })

  it("Haraka's own web server (http.ini) answers the recipient API as linksec serve does, rate-limited", async (t) => {
    if (!needTools(t, { openssl: 'openssl' })) return
    const webPort = await freePort()
    let h: HarakaInstance | undefined
    try {
      h = await startHaraka({
        linksec: { ...ini, http: { recipients_burst: 3, recipients_rate: 1 } },
        config: { 'http.ini': `[main]\nlisten=127.0.0.1:${webPort}\n` },
      })
      await waitForPort(webPort)
      await h.waitForLog(/linksec HTTP paths mounted on Haraka's HTTP server/)
      const first = await ask('/v1/recipients/alice@l3.test', webPort)
      assert.equal(first.status, 200, first.body)
      assert.match(String(first.headers['content-type']), /^application\/json/)
      assert.equal(json(first).key.source, 'wkd_advanced')
      assert.equal(json(first).key.fingerprint, alice.fingerprint)
      // Asked twice each, both answers come from each process's cache (the first
      // serve answer may be too, from the tests above); each process fetched the
      // records itself, so only their expiry instants differ.
      await ask('/v1/recipients/alice@l3.test')
      const fromHaraka = await ask('/v1/recipients/alice@l3.test', webPort)
      const fromServe = await ask('/v1/recipients/alice@l3.test')
      const timeless = (r: Reply) => {
        const j = json(r)
        for (const row of j.policy.sources) delete row.expiresAt
        return j
      }
      assert.ok(json(fromHaraka).policy.sources.some((row) => typeof row.expiresAt === 'string'))
      assert.deepEqual(timeless(fromHaraka), timeless(fromServe))
      const domains = await ask('/v1/domains', webPort)
      assert.equal(domains.status, 200, domains.body)
      assert.equal(typeof (JSON.parse(domains.body) as { policies: unknown }).policies, 'object')
      const fourth = await ask('/v1/recipients/dave@none.test', webPort)
      assert.equal(fourth.status, 429, fourth.body)
      assert.ok(Number(fourth.headers['retry-after']) >= 1)
      // Haraka's own paths are left alone: an unknown path is Haraka's 404, not ours.
      const other = await ask('/not-linksec', webPort)
      assert.equal(other.status, 404)
      assert.doesNotMatch(other.body, /try \/metrics/)
      assert.doesNotMatch(h.log(), /linksec metrics listener started/)
    } finally {
      await h?.stop()
    }
  })
})
