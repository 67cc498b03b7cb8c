/**
 * The Web Key Service through a real Haraka with the linksec plugin (from
 * node_modules, as an operator installs it), with GnuPG's gpg-wks-client:
 * the submission sent with swaks is taken by the plugin's pipeline before
 * the queue (Haraka's queue/discard drops it; the test sink never sees it),
 * the confirmation request goes through `[wks] relay` to a second Haraka on
 * loopback (the "mailbox" of ann, a plain sink), gpg-wks-client --receive
 * answers it, and the answer through Haraka publishes the key in the
 * instance's config/keys. A submission from a foreign domain is refused
 * 550 5.7.1 with the reason, and nothing is published for it.
 *
 * As in wks-postfix.test.ts, gpg-wks-client and gpg find everything as on
 * the Internet (startWkdWorld in test/helpers/wks.ts): dirmngr reads the
 * policy file and the submission key over WKD, served by the plugin's own
 * `[http] listen` behind a loopback HTTPS host on port 443, with DNS from a
 * test server on port 53, in a private mount namespace; nothing reaches the
 * system resolver. Finally `gpg --locate-keys --auto-key-locate clear,wkd`
 * finds ann's published key the same way.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { wkdHash } from '../../core/keys'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { freePort } from '../helpers/ports'
import { swaks } from '../helpers/postfix'
import { isRoot, needRoot, needTools } from '../helpers/tools'
import {
  linksec,
  startWkdWorld,
  WKS_CLIENT,
  wksUser,
  assertLocatedOverWkd,
  type WkdWorld,
  type WksUser,
} from '../helpers/wks'

const DOMAIN = 'wks.test'
const SA = `key-submission@${DOMAIN}`
const ANN = `ann@${DOMAIN}`

describe('Web Key Service through a real Haraka with gpg-wks-client', () => {
  let mailbox: HarakaInstance | undefined
  let mx: HarakaInstance | undefined
  let scratch: string
  let ann: WksUser | undefined
  let keysDir: string
  let world: WkdWorld | undefined

  before(async () => {
    // unshare --mount and ports 53/443 for the WKD world need root (as wks-postfix.test.ts).
    if (!isRoot() || !fs.existsSync(WKS_CLIENT)) return
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-wks-haraka-'))
    fs.chmodSync(scratch, 0o755)
    mailbox = await startHaraka({ plugins: ['test_sink'] })
    const httpPort = await freePort()
    mx = await startHaraka({
      plugins: ['tls', 'linksec', 'queue/discard', 'test_sink'],
      linksec: {
        main: { domain: DOMAIN },
        log: { level: 'info' },
        resolver: { servers: '127.0.0.1:1' },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'local' },
        wks: { enabled: true, relay: `127.0.0.1:${mailbox.port}` },
        // The plugin's own listener serves WKD (and /metrics); the HTTPS host of the world proxies to it.
        http: { listen: `127.0.0.1:${httpPort}` },
      },
    })
    const conf = path.join(mx.dir, 'config')
    keysDir = path.join(conf, 'keys')
    linksec(conf, 'keys', 'ca', 'init', DOMAIN)
    linksec(conf, 'wks', 'init', DOMAIN)
    // No submission key in ann's keyring: gpg-wks-client finds the policy and the key over WKD.
    ann = wksUser(scratch, ANN, undefined, SA)
    world = await startWkdWorld(scratch, DOMAIN, httpPort)
  })

  after(async () => {
    ann?.close()
    await world?.close()
    await mx?.stop()
    await mailbox?.stop()
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true })
  })

  it('submission -> confirmation request in the mailbox -> answer -> key published; the submission never queued', async (t) => {
    if (!needTools(t, { swaks: 'swaks', gpg: 'gnupg', [WKS_CLIENT]: 'gpg-wks-client' })) return
    if (!needRoot(t, 'unshare --mount and ports 53/443 for the WKD world need root')) return
    assert.ok(mx && mailbox && world, 'the Haraka WKS world did not start')
    const sub = await world.run(WKS_CLIENT, ['--create', ann!.fingerprint, ANN], ann!.home)
    assert.equal(sub.status, 0, sub.err)
    // It read the submission address from the policy file and fetched the submission key over WKD.
    assert.ok(
      world.seen.some((l) => l === `openpgpkey.${DOMAIN} /.well-known/openpgpkey/${DOMAIN}/policy`),
      world.seen.join('\n'),
    )
    assert.ok(
      world.seen.some((l) => l.includes(`/hu/${wkdHash('key-submission')}`)),
      world.seen.join('\n'),
    )
    const sent = swaks(mx, { from: ANN, to: SA, data: sub.out.toString() })
    assert.equal(sent.status, 0, sent.transcript)
    const [req] = await mailbox.waitForQueued(1, 30_000)
    assert.ok(req)
    assert.deepEqual(req.rcptTo, [ANN])
    assert.match(req.raw, /^WKS-Phase: confirm\r$/m)
    assert.equal(mx.queued().length, 0, 'the submission was delivered instead of taken')
    const answer = await world.run(WKS_CLIENT, ['--receive'], ann!.home, req.raw)
    assert.equal(answer.status, 0, answer.err)
    assert.equal(fs.existsSync(path.join(keysDir, `${ANN}.pgp`)), false)
    const confirmed = swaks(mx, { from: ANN, to: SA, data: answer.out.toString() })
    assert.equal(confirmed.status, 0, confirmed.transcript)
    assert.ok(fs.existsSync(path.join(keysDir, `${ANN}.pgp`)), 'the key was not published')
    assert.equal(mx.queued().length, 0)
  })

  it('a submission for a foreign domain is refused 550 5.7.1 with the reason; nothing published', async (t) => {
    if (!needRoot(t, 'unshare --mount and ports 53/443 for the WKD world need root')) return
    assert.ok(mx && ann, 'the first step did not submit a key')
    // Eve's client is told the submission key (her domain has no WKD in this world).
    const eve = wksUser(scratch, 'eve@elsewhere.test', path.join(keysDir, `${SA}.pgp`), SA)
    try {
      const sub = eve.client(['--create', eve.fingerprint, eve.address])
      assert.equal(sub.status, 0, sub.err)
      const sent = swaks(mx, { from: eve.address, to: SA, data: sub.out.toString() })
      assert.match(
        sent.dataReply,
        /^550 5\.7\.1 .*elsewhere\.test is not a domain this server publishes keys for/,
      )
      assert.equal(fs.existsSync(path.join(keysDir, 'eve@elsewhere.test.pgp')), false)
    } finally {
      eve.close()
    }
  })

  it('gpg --locate-keys --auto-key-locate clear,wkd finds the published key over the test DNS and HTTPS WKD', async (t) => {
    if (!world || !fs.existsSync(path.join(keysDir, `${ANN}.pgp`))) return t.skip('needs the first step')
    await assertLocatedOverWkd(world, scratch, {
      local: 'ann',
      domain: DOMAIN,
      fingerprint: ann!.fingerprint,
    })
  })
})
