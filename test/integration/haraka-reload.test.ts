/**
 * A linksec.ini edit in a running Haraka (haraka-config's watcher calls the
 * plugin back; plugins/config.ts reconfigures the one Engine, core/engine.ts):
 * - a declaration learned from a peer's EHLO (`LINKSEC 2` at mx.two.test)
 *   still refuses a message tagged level 3 for that domain after the reload;
 * - a key fetched over WKD is taken from the cache after the reload (the A-R
 *   says "key from cache"), no second fetch;
 * - the edit changes [redis] prefix, so the Redis client is replaced: the old
 *   connection is gone from CLIENT LIST (real redis-server on loopback).
 * Learned declarations and keys also go to Redis under the old prefix, which
 * the new client no longer reads: what survives is the engine's own memory.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as openpgp from 'openpgp'
import { parseAddress, wkdHash } from '../../core/keys'
import { startHaraka, type HarakaInstance, type IniSections } from '../helpers/haraka'
import { PINNED_MX_PLUGIN, submit } from '../helpers/receivers'
import { startRedis, type TestRedis } from '../helpers/redis'
import { assembleSigned, textPart } from '../helpers/signers'
import { testCa } from '../helpers/test-ca'
import { needTools, which } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

/** Header fields unfolded (RFC 5322 §2.2.3): linksec folds its A-R at 78 columns. */
const unfold = (raw: string): string => raw.replace(/\r?\n[ \t]+/g, ' ')

const ALICE = 'alice@adv.test'

async function signedBy(key: openpgp.PrivateKey, subject: string): Promise<string> {
  const inner = textPart(`hello, ${subject}\n`)
  const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message, signingKeys: key, detached: true })) as string
  return assembleSigned({ from: ALICE, to: 'bob@two.test', subject }, inner, sig).toString('latin1')
}

const until = async <T>(
  what: string,
  f: () => T | undefined,
  log?: () => string,
  ms = 30_000,
): Promise<T> => {
  const end = Date.now() + ms
  for (;;) {
    const v = f()
    if (v !== undefined) return v
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}${log ? `\n${log().slice(-5000)}` : ''}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe(
  'Haraka reload keeps what the engine learned and closes the Redis client it replaces',
  { timeout: 180_000 },
  () => {
    let world: World | undefined
    let redis: TestRedis | undefined
    let receiver: HarakaInstance | undefined
    let sender: HarakaInstance | undefined
    let key: openpgp.PrivateKey
    let ini: (prefix: string) => IniSections
    const tools = { 'redis-server': 'redis-server', 'redis-cli': 'redis-tools', openssl: 'openssl' }

    before(async () => {
      if (!Object.keys(tools).every((t) => which(t))) return
      key = (await openpgp.generateKey({ userIDs: [{ email: ALICE }], format: 'object' })).privateKey
      const a = parseAddress(ALICE)!
      world = await startWorld({
        hosts: ['openpgpkey.adv.test'],
        routes: {
          [`openpgpkey.adv.test/.well-known/openpgpkey/adv.test/hu/${wkdHash(a.local)}`]: {
            body: Buffer.from(key.toPublic().write()),
          },
          'openpgpkey.adv.test/.well-known/openpgpkey/adv.test/policy': { body: '' },
        },
      })
      redis = await startRedis()
      process.env.NODE_EXTRA_CA_CERTS = testCa().caFile
      const leaf = await testCa().leaf(['mx.two.test'])
      receiver = await startHaraka({
        plugins: ['tls', 'linksec', 'test_sink'],
        // It only declares LINKSEC 2; it has no DNS of the test world to check signatures with.
        linksec: {
          main: { level: 2, mailboxes_tls_only: true, authserv_id: 'mx.two.test' },
          verify: { enabled: false },
        },
        tlsKeyPem: leaf.key,
        tlsCertPem: leaf.cert,
      })
      ini = (prefix) => ({
        main: { level: 4, mailboxes_tls_only: true },
        enforce: { peer_level: true },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'wkd' },
        resolver: { servers: world!.dns.address, timeout_ms: 2000 },
        net: { ca_file: world!.ca.caFile, https_port: world!.https.port, allow_private_addresses: true },
        redis: { url: redis!.url, prefix },
      })
      sender = await startHaraka({
        plugins: ['tls', 'linksec', 'test_relay', 'pinned_mx'],
        localPlugins: { pinned_mx: PINNED_MX_PLUGIN },
        config: {
          'pinned_mx.ini': `[domains]\ntwo.test=mx.two.test:127.0.0.1:${receiver.port}\n`,
          'outbound.ini': 'local_mx_ok=true\ntemp_fail_intervals=5s\n',
        },
        linksec: ini('before:'),
      })
    })

    after(async () => {
      await sender?.stop()
      await receiver?.stop()
      await redis?.stop()
      await world?.close()
      delete process.env.NODE_EXTRA_CA_CERTS
    })

    const send = (data: string) => submit({ port: sender!.port, from: ALICE, to: ['bob@two.test'], data })
    const tagged3 = (id: string) =>
      `From: ${ALICE}\r\nSubject: ${id}\r\nLink-Security-Required: 3\r\n\r\nsecret\r\n`
    const received = (subject: string) =>
      until(
        `${subject} at mx.two.test`,
        () => receiver!.queued().find((m) => m.raw.includes(`Subject: ${subject}`)),
        () => sender!.log(),
      )
    const wkdFetches = () => world!.https.requests.filter((r) => r.path.includes('/hu/')).length

    it('learns, caches, reloads with a new [redis] prefix, and keeps both while the old connection closes', async (t) => {
      if (!needTools(t, tools)) return
      assert.ok(sender && receiver && redis && world, 'peers did not start')
      // A signed message, relayed to mx.two.test: the key comes over WKD; the EHLO there says LINKSEC 2.
      const first = await send(await signedBy(key, 'first'))
      assert.ok(first.accepted, first.reply)
      const got = await received('first')
      assert.match(unfold(got.raw), /x-openpgp=pass header\.from=alice@adv\.test .*\(key from wkd[_a-z]*\)/)
      assert.equal(wkdFetches(), 1)
      const refusedBefore = await send(tagged3('tagged-before'))
      assert.match(refusedBefore.reply, /^550 5\.7\.10 .*two\.test \(level 2\)/, 'learned from the EHLO')
      const linksecClients = redis.clientList()
      assert.ok(linksecClients.length >= 1, 'linksec talks to Redis')

      sender.writeLinksecIni(ini('after:'))
      await sender.waitForLog(/linksec configuration reloaded/)
      // The replaced client closes (asynchronously, once its last command is answered).
      await until('the old Redis connection to close', () => {
        const now = new Set(redis!.clientList().map((c) => c.id))
        return linksecClients.every((c) => !now.has(c.id)) ? true : undefined
      })

      const refusedAfter = await send(tagged3('tagged-after'))
      assert.match(
        refusedAfter.reply,
        /^550 5\.7\.10 .*two\.test \(level 2\)/,
        'the learned declaration survived',
      )
      const second = await send(await signedBy(key, 'second'))
      assert.ok(second.accepted, second.reply)
      const got2 = await received('second')
      assert.match(unfold(got2.raw), /x-openpgp=pass header\.from=alice@adv\.test .*\(key from cache\)/)
      assert.equal(wkdFetches(), 1, 'no second WKD fetch')
    })
  },
)
