/**
 * Key discovery over a private loopback world (test DNS server, HTTPS host
 * with a test CA): WKD advanced and direct, OPENPGPKEY under DNSSEC, and the
 * faulty hosts (hang, 500, slow drip, oversized body, redirect elsewhere)
 * that must give temperror by the configured [net] timeout, never a pass and
 * never a hang until the message deadline.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as openpgp from 'openpgp'
import { parseAddress, wkdHash } from '../../core/keys'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime, type Runtime } from '../../core/runtime'
import { verifyMessage, type VerifyDecision } from '../../core/verify'
import { redirect } from '../helpers/https-server'
import { assembleSigned, textPart } from '../helpers/signers'
import { startWorld, type World } from '../helpers/world'

interface Person {
  address: string
  key: openpgp.PrivateKey
  pub: Buffer
}

async function person(address: string): Promise<Person> {
  const { privateKey } = await openpgp.generateKey({ userIDs: [{ email: address }], format: 'object' })
  return { address, key: privateKey, pub: Buffer.from(privateKey.toPublic().write()) }
}

async function signedBy(p: Person, from = p.address): Promise<Buffer> {
  const inner = textPart(`hello from ${from}\n`)
  const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message, signingKeys: p.key, detached: true })) as string
  return assembleSigned({ from }, inner, sig)
}

const advancedPath = (addr: string) => {
  const a = parseAddress(addr)!
  return `openpgpkey.${a.domain}/.well-known/openpgpkey/${a.domain}/hu/${wkdHash(a.local)}`
}
const directPath = (addr: string) => {
  const a = parseAddress(addr)!
  return `${a.domain}/.well-known/openpgpkey/hu/${wkdHash(a.local)}`
}

describe('key discovery over WKD and OPENPGPKEY on loopback', () => {
  let world: World
  let rt: Runtime
  const people: Record<string, Person> = {}
  const check = (msg: Buffer): Promise<VerifyDecision> =>
    verifyMessage(rt, msg, { signaturePolicy: async () => 'optional' })

  before(async () => {
    for (const who of [
      'alice@adv.test',
      'bob@direct.test',
      'carol@dane.test',
      'dan@wrong.test',
      'eve@adv.test',
    ])
      people[who] = await person(who)
    for (const who of ['x@hang.test', 'x@five.test', 'x@drip.test', 'x@big.test', 'x@moved.test'])
      people[who] = await person(who)
    world = await startWorld({
      hosts: [
        'openpgpkey.adv.test',
        'direct.test',
        'openpgpkey.wrong.test',
        'openpgpkey.hang.test',
        'openpgpkey.five.test',
        'openpgpkey.drip.test',
        'openpgpkey.big.test',
        'openpgpkey.moved.test',
      ],
      routes: {
        [advancedPath('alice@adv.test')]: {
          body: people['alice@adv.test']!.pub,
          headers: { 'content-type': 'application/octet-stream' },
        },
        [directPath('bob@direct.test')]: { body: people['bob@direct.test']!.pub },
        // A key for someone else served under dan's hash.
        [advancedPath('dan@wrong.test')]: { body: people['eve@adv.test']!.pub },
        [advancedPath('x@hang.test')]: { fault: 'hang' },
        [advancedPath('x@five.test')]: { status: 500, body: 'oops' },
        [advancedPath('x@drip.test')]: { fault: 'drip', dripMs: 200, body: people['x@drip.test']!.pub },
        [advancedPath('x@big.test')]: { fault: 'oversized', bytes: 2 * 1024 * 1024 },
        [advancedPath('x@moved.test')]: redirect('https://elsewhere.test/key'),
      },
    })
    const carol = parseAddress('carol@dane.test')!
    const { openpgpkeyName } = await import('../../core/keys')
    world.dns.set(openpgpkeyName(carol), { OPENPGPKEY: [people['carol@dane.test']!.pub], secure: true })
    const cfg = world.config({
      main: { authserv_id: 'mx.test' },
      keys: { methods: ['wkd', 'openpgpkey'] },
      net: { timeout_ms: 800, max_bytes: 65536 },
      verify: { deadline_ms: 30000 },
    })
    rt = createRuntime(cfg, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
  })
  after(async () => world?.close())

  it('WKD advanced: pass, key from wkd_advanced, ?l= sent; then from the cache without a request', async () => {
    const msg = await signedBy(people['alice@adv.test']!)
    const d = await check(msg)
    assert.equal(d.result, 'pass', d.facts.reason)
    assert.equal(d.facts.keySource, 'wkd_advanced')
    const reqs = world.https.requests.filter((r) => r.host.startsWith('openpgpkey.adv.test'))
    assert.equal(reqs.length, 1)
    assert.match(reqs[0]!.path, /\?l=alice$/)
    const again = await check(msg)
    assert.equal(again.facts.keySource, 'cache')
    assert.equal(world.https.requests.filter((r) => r.host.startsWith('openpgpkey.adv.test')).length, 1)
  })

  it('WKD direct only because openpgpkey.<domain> has no address', async () => {
    const d = await check(await signedBy(people['bob@direct.test']!))
    assert.equal(d.result, 'pass', d.facts.reason)
    assert.equal(d.facts.keySource, 'wkd_direct')
  })

  it('OPENPGPKEY with an authenticated answer', async () => {
    const d = await check(await signedBy(people['carol@dane.test']!))
    assert.equal(d.result, 'pass', d.facts.reason)
    assert.equal(d.facts.keySource, 'openpgpkey')
  })

  it("a key served under the wrong address: neutral, the key server's fault (accepted, tagged)", async () => {
    const d = await check(await signedBy(people['eve@adv.test']!, 'dan@wrong.test'))
    assert.equal(d.result, 'neutral')
    assert.match(d.facts.reason, /no user ID for dan@wrong\.test; the key server's fault/)
    assert.equal(d.verdict.action, 'continue')
  })

  it('signed by a key the domain does not publish: fail', async () => {
    const d = await check(await signedBy(people['eve@adv.test']!, 'alice@adv.test'))
    assert.equal(d.result, 'fail')
    assert.match(d.facts.reason, /not the sender's key/)
  })

  const faults: [string, RegExp][] = [
    ['x@hang.test', /TIMEOUT/],
    ['x@five.test', /HTTP 500/],
    ['x@drip.test', /TIMEOUT/],
    ['x@big.test', /TOO_LARGE/],
    ['x@moved.test', /REDIRECT/],
  ]
  for (const [who, why] of faults) {
    it(`a faulty WKD host (${who.split('@')[1]}) gives temperror from the fetch limits: 451 4.7.5`, async () => {
      const d = await check(await signedBy(people[who]!))
      assert.equal(d.result, 'temperror')
      assert.match(d.facts.reason, why)
      assert.doesNotMatch(d.facts.reason, /deadline_ms/)
      assert.equal(d.verdict.code, 451)
      assert.equal(d.verdict.enhanced, '4.7.5')
      // Advanced answered (badly): the direct method was never tried.
      const domain = who.split('@')[1]!
      assert.equal(world.https.requests.filter((r) => r.host.startsWith(domain)).length, 0)
    })
  }

  it('counts lookups per method and outcome', async () => {
    const text = await rt.metrics.registry.metrics()
    assert.match(text, /linksec_key_lookups_total\{method="wkd_advanced",outcome="found"\} 1/)
    assert.match(text, /linksec_key_lookups_total\{method="wkd_direct",outcome="found"\} 1/)
    assert.match(text, /linksec_key_lookups_total\{method="openpgpkey",outcome="found"\} 1/)
    assert.match(text, /linksec_key_lookups_total\{method="wkd_advanced",outcome="error"\} [1-9]/)
    assert.match(text, /linksec_signature_results_total\{result="temperror"\} 5/)
  })
})
