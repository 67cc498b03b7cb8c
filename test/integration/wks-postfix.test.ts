/**
 * The Web Key Service through a real Postfix 3.7 with `linksec serve` as its
 * milter, and GnuPG's own client (gpg-wks-client 2.2): ann's key goes in by
 * `gpg-wks-client --create`, sent with swaks to key-submission@wks.test;
 * linksec takes it before delivery (the submission never reaches the sink)
 * and mails the confirmation request through `[wks] relay` (this Postfix, so
 * it lands at the sink); `gpg-wks-client --receive` decrypts it, checks it
 * names its key and answers; the answer through Postfix publishes the key,
 * certified by the domain CA: WKD serves it and `gpg --check-sigs` shows the
 * CA's certification. A replayed answer is refused 550 5.7.1, nothing new is
 * published, and each outcome is counted.
 *
 * gpg-wks-client and gpg find everything as they would on the Internet:
 * dirmngr reads the policy file (the submission address) and the keys over
 * WKD, here in a private mount namespace whose resolv.conf names a test DNS
 * server on port 53 of a loopback address of this test's own, with WKD on
 * port 443 beside it (test CA in the CA bundle), so no lookup leaves the
 * machine. Finally `gpg --locate-keys --auto-key-locate clear,wkd` finds ann's
 * published key the same way.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { wkdHash } from '../../core/keys'
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server'
import {
  startLinksecServe,
  startPostfix,
  swaks,
  type PostfixInstance,
  type ServeInstance,
  type SinkMessage,
} from '../helpers/postfix'
import { freePort } from '../helpers/ports'
import { isRoot, needRoot, needTools } from '../helpers/tools'
import {
  get,
  linksec,
  run,
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
describe('Web Key Service through a real Postfix with gpg-wks-client', () => {
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined
  let dns: TestDnsServer | undefined
  let scratch: string
  let ann: WksUser | undefined
  let world: WkdWorld | undefined
  let httpPort: number
  let response: Buffer

  before(async () => {
    if (!isRoot() || !fs.existsSync(WKS_CLIENT)) return
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-wks-pf-'))
    fs.chmodSync(scratch, 0o755)
    dns = await startDnsServer({})
    // Postfix first (it connects to the milter only when mail comes), so [wks] relay can name it.
    const milter = `inet:127.0.0.1:${await freePort()}`
    pf = await startPostfix({ milter })
    serve = await startLinksecServe({
      milterListen: milter,
      ini: {
        main: { authserv_id: 'mx.wks.test', domain: DOMAIN },
        log: { level: 'info' },
        resolver: { servers: dns.address },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'local' },
        // The confirmation request goes out through this Postfix, to its sink.
        wks: { enabled: true, relay: `127.0.0.1:${pf.port}` },
      },
    })
    httpPort = Number(serve.httpAddress.split(':')[1])
    linksec(serve.configDir, 'keys', 'ca', 'init', DOMAIN)
    linksec(serve.configDir, 'wks', 'init', DOMAIN)
    // No submission key in ann's keyring: gpg-wks-client finds the policy and the key over WKD.
    ann = wksUser(scratch, ANN, undefined, SA)
    world = await startWkdWorld(scratch, DOMAIN, httpPort)
  })

  after(async () => {
    ann?.close()
    await world?.close()
    await pf?.stop()
    await serve?.stop()
    await dns?.close()
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true })
  })

  it('the policy file names the submission address; WKD serves the submission key', async (t) => {
    if (!needTools(t, { postfix: 'postfix', swaks: 'swaks', gpg: 'gnupg', [WKS_CLIENT]: 'gpg-wks-client' }))
      return
    if (!needRoot(t, 'unshare --mount and ports 53/443 for the WKD world need root')) return
    assert.ok(serve, 'linksec serve did not start')
    const policy = await get(httpPort, `/.well-known/openpgpkey/${DOMAIN}/policy`, `openpgpkey.${DOMAIN}`)
    assert.equal(policy.status, 200)
    assert.match(policy.body.toString(), new RegExp(`^submission-address: ${SA}$`, 'm'))
    const file = await get(httpPort, '/.well-known/openpgpkey/submission-address', DOMAIN)
    assert.equal(file.body.toString(), `${SA}\n`)
    const key = await get(httpPort, `/.well-known/openpgpkey/hu/${wkdHash('key-submission')}`, DOMAIN)
    assert.equal(key.status, 200)
  })

  it('gpg-wks-client --create -> Postfix -> confirmation request at the sink, the submission not delivered', async (t) => {
    if (!needRoot(t, 'unshare --mount and ports 53/443 for the WKD world need root')) return
    assert.ok(serve && pf, 'linksec serve or Postfix did not start')
    const sub = await world!.run(WKS_CLIENT, ['--create', ann!.fingerprint, ANN], ann!.home)
    assert.equal(sub.status, 0, sub.err)
    assert.match(sub.out.toString(), /^Wks-Draft-Version: 3$/m)
    // It read the submission address from the policy file and fetched the submission key over WKD.
    assert.ok(
      world!.seen.some((l) => l === `openpgpkey.${DOMAIN} /.well-known/openpgpkey/${DOMAIN}/policy`),
      world!.seen.join('\n'),
    )
    assert.ok(
      world!.seen.some((l) => l.includes(`/hu/${wkdHash('key-submission')}`)),
      world!.seen.join('\n'),
    )
    const sent = swaks(pf, { from: ANN, to: SA, data: sub.out.toString() })
    assert.equal(sent.status, 0, sent.transcript)
    const [req] = await pf.waitForSink(1, 30_000, (m) => /^WKS-Phase: confirm$/im.test(m.message))
    assert.ok(req)
    assert.match(req.message, new RegExp(`^To: ${ANN}`, 'm'))
    assert.match(req.message, /multipart\/signed/)
    assert.ok(!pf.sinkMessages().some((m: SinkMessage) => /Key publishing request/.test(m.message)))
    // The user's own client answers: it decrypts the request with ann's key and checks the fingerprint.
    const answer = await world!.run(WKS_CLIENT, ['--receive'], ann!.home, req.message)
    assert.equal(answer.status, 0, answer.err)
    response = answer.out
    assert.match(response.toString(), /^Subject: Key publication confirmation$/m)
  })

  it('the confirmation through Postfix publishes the CA-certified key; gpg --check-sigs shows the CA', async (t) => {
    if (!serve || !pf || !response) return t.skip('needs the previous step')
    assert.equal(fs.existsSync(path.join(serve.configDir, 'keys', `${ANN}.pgp`)), false)
    const sent = swaks(pf, { from: ANN, to: SA, data: response.toString() })
    assert.equal(sent.status, 0, sent.transcript)
    const served = await get(httpPort, `/.well-known/openpgpkey/hu/${wkdHash('ann')}?l=ann`, DOMAIN)
    assert.equal(served.status, 200)
    const ca = await get(httpPort, `/.well-known/openpgpkey/hu/${wkdHash('openpgp-ca')}?l=openpgp-ca`, DOMAIN)
    assert.equal(ca.status, 200)
    const check = path.join(scratch, 'check')
    fs.mkdirSync(check, { mode: 0o700 })
    fs.writeFileSync(path.join(scratch, 'ann.pgp'), served.body)
    fs.writeFileSync(path.join(scratch, 'ca.pgp'), ca.body)
    const env = { GNUPGHOME: check }
    for (const f of ['ca.pgp', 'ann.pgp'])
      assert.equal(run('gpg', ['--batch', '--import', path.join(scratch, f)], env).status, 0)
    const sigs = run('gpg', ['--batch', '--check-sigs', ANN], env)
    run('gpgconf', ['--kill', 'all'], env)
    assert.equal(sigs.status, 0, sigs.err)
    assert.match(sigs.out.toString(), new RegExp(ann!.fingerprint))
    assert.match(sigs.out.toString(), /^sig!\s.*OpenPGP CA <openpgp-ca@wks\.test>/m)
  })

  it('a replayed confirmation is refused 550 5.7.1 and counted; nothing else is published', async (t) => {
    if (!serve || !pf || !response) return t.skip('needs the previous steps')
    const before = fs.readFileSync(path.join(serve.configDir, 'keys', `${ANN}.pgp`))
    const again = swaks(pf, { from: ANN, to: SA, data: response.toString() })
    assert.match(again.dataReply, /^550 5\.7\.1 .*no submission waits for this nonce/)
    assert.deepEqual(fs.readFileSync(path.join(serve.configDir, 'keys', `${ANN}.pgp`)), before)
    const metrics = (await get(httpPort, '/metrics', '127.0.0.1')).body.toString()
    for (const outcome of ['confirmation_sent', 'published', 'unknown_nonce'])
      assert.match(metrics, new RegExp(`^linksec_wks_messages_total\\{outcome="${outcome}"\\} 1$`, 'm'))
  })

  it('gpg --locate-keys --auto-key-locate clear,wkd finds the published key over the test DNS and HTTPS WKD', async (t) => {
    if (!serve || !response || !world) return t.skip('needs the previous steps')
    await assertLocatedOverWkd(world, scratch, {
      local: 'ann',
      domain: DOMAIN,
      fingerprint: ann!.fingerprint,
    })
  })
})
