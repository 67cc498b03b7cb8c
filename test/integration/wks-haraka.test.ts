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
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { swaks } from '../helpers/postfix'
import { needTools } from '../helpers/tools'
import { linksec, WKS_CLIENT, wksUser, type WksUser } from '../helpers/wks'

const DOMAIN = 'wks.test'
const SA = `key-submission@${DOMAIN}`
const ANN = `ann@${DOMAIN}`

describe('Web Key Service through a real Haraka with gpg-wks-client', () => {
  let mailbox: HarakaInstance | undefined
  let mx: HarakaInstance | undefined
  let scratch: string
  let ann: WksUser | undefined
  let keysDir: string

  before(async () => {
    if (!fs.existsSync(WKS_CLIENT)) return
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-wks-haraka-'))
    mailbox = await startHaraka({ plugins: ['test_sink'] })
    mx = await startHaraka({
      plugins: ['tls', 'linksec', 'queue/discard', 'test_sink'],
      linksec: {
        main: { domain: DOMAIN },
        log: { level: 'info' },
        resolver: { servers: '127.0.0.1:1' },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'local' },
        wks: { enabled: true, relay: `127.0.0.1:${mailbox.port}` },
      },
    })
    const conf = path.join(mx.dir, 'config')
    keysDir = path.join(conf, 'keys')
    linksec(conf, 'keys', 'ca', 'init', DOMAIN)
    linksec(conf, 'wks', 'init', DOMAIN)
    ann = wksUser(scratch, ANN, path.join(keysDir, `${SA}.pgp`), SA)
  })

  after(async () => {
    ann?.close()
    await mx?.stop()
    await mailbox?.stop()
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true })
  })

  it('submission -> confirmation request in the mailbox -> answer -> key published; the submission never queued', async (t) => {
    if (!needTools(t, { swaks: 'swaks', gpg: 'gnupg', [WKS_CLIENT]: 'gpg-wks-client' }) || !mx || !mailbox)
      return
    const sub = ann!.client(['--create', ann!.fingerprint, ANN])
    assert.equal(sub.status, 0, sub.err)
    const sent = swaks(mx, { from: ANN, to: SA, data: sub.out.toString() })
    assert.equal(sent.status, 0, sent.transcript)
    const [req] = await mailbox.waitForQueued(1, 30_000)
    assert.ok(req)
    assert.deepEqual(req.rcptTo, [ANN])
    assert.match(req.raw, /^WKS-Phase: confirm\r$/m)
    assert.equal(mx.queued().length, 0, 'the submission was delivered instead of taken')
    const answer = ann!.client(['--receive'], req.raw)
    assert.equal(answer.status, 0, answer.err)
    assert.equal(fs.existsSync(path.join(keysDir, `${ANN}.pgp`)), false)
    const confirmed = swaks(mx, { from: ANN, to: SA, data: answer.out.toString() })
    assert.equal(confirmed.status, 0, confirmed.transcript)
    assert.ok(fs.existsSync(path.join(keysDir, `${ANN}.pgp`)), 'the key was not published')
    assert.equal(mx.queued().length, 0)
  })

  it('a submission for a foreign domain is refused 550 5.7.1 with the reason; nothing published', async (t) => {
    if (!mx || !ann) return t.skip('needs gpg-wks-client')
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
})
