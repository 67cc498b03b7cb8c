/**
 * The attacker scenario of issue 14, through real Postfix with `linksec
 * serve` as its milter, in the world of test/helpers/ca-attack.ts
 * (ca-attacker-haraka.test.ts is the same through a real Haraka):
 *
 * 1. alice's mail, signed by GnuPG, passes with policy.ca=.
 * 2. Someone who took the web server swaps alice's key on WKD for their own
 *    (a GnuPG key with alice's user ID, not certified by the CA). Their mail
 *    is refused 550 5.7.1 "key not certified by the domain CA"; alice's
 *    mail signed before the swap (queued, say) still passes.
 * 3. The same swap for a domain whose `ca=` answer is not validated: the
 *    `ca=` is named "ignored" in the A-R comment, and the key change is
 *    marked policy.key-change=.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startCaAttackScene, type CaAttackScene } from '../helpers/ca-attack'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from '../helpers/postfix'
import { dataReply, swaks } from '../helpers/swaks'
import { isRoot, needTools, which } from '../helpers/tools'

const AUTHSERV = 'mx.receiver.test'
const tools = { postfix: 'postfix', 'smtp-sink': 'postfix', swaks: 'swaks', gpg: 'gnupg' }

async function send(
  port: number,
  from: string,
  data: Buffer,
): Promise<{ reply: string; transcript: string }> {
  const r = await swaks({ port, from, to: 'bob@receiver.test', data, timeoutMs: 60_000 })
  return { reply: dataReply(r.out), transcript: r.out }
}

describe('a key swapped on the sender domain WKD, with ca= declared, through real Postfix', () => {
  let scene: CaAttackScene | undefined
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined

  before(async () => {
    if (!Object.keys(tools).every((t) => which(t)) || !isRoot()) return
    scene = await startCaAttackScene()
    serve = await startLinksecServe({
      ini: { main: { authserv_id: AUTHSERV }, log: { level: 'info' }, ...scene.ini },
    })
    pf = await startPostfix({ milter: serve.milterAddress, milterDefaultAction: 'tempfail' })
  })
  after(async () => {
    await pf?.stop()
    await serve?.stop()
    await scene?.close()
  })

  const ready = (t: Parameters<typeof needTools>[0]) => {
    if (!needTools(t, tools)) return false
    if (!isRoot()) {
      t.skip('postfix-up.sh needs root')
      return false
    }
    assert.ok(pf && serve && scene, 'peers did not start')
    return true
  }

  const delivered = async (subject: string) => {
    const msgs = await pf!.waitForSink(1, 30_000, (m) =>
      m.headers.some(([n, v]) => n === 'Subject' && v === subject),
    )
    const m = msgs.find((x) => x.headers.some(([n, v]) => n === 'Subject' && v === subject))!
    return m.headers
      .filter(([n, v]) => n.toLowerCase() === 'authentication-results' && v.includes('x-openpgp'))
      .map(([, v]) => v)
  }

  it("alice's certified key passes, with policy.ca=", async (t) => {
    if (!ready(t)) return
    const r = await send(pf!.port, 'alice@example.org', scene!.mail.legit)
    assert.match(r.reply, /^250 /, r.transcript)
    const [ar] = await delivered('legit')
    assert.match(
      ar ?? '',
      new RegExp(
        `x-openpgp=pass header\\.from=alice@example\\.org body\\.openpgp-fingerprint=${scene!.fpr.alice} policy\\.ca=${scene!.fpr.ca}`,
      ),
    )
  })

  it("after the swap: the attacker's mail is refused 550 5.7.1, alice's queued mail still passes", async (t) => {
    if (!ready(t)) return
    scene!.swap('example.org')
    const bad = await send(pf!.port, 'alice@example.org', scene!.mail.attacker)
    assert.match(
      bad.reply,
      /^550 5\.7\.1 .*alice@example\.org.*key not certified by the domain CA/,
      bad.transcript,
    )
    const queued = await send(pf!.port, 'alice@example.org', scene!.mail.queued)
    assert.match(queued.reply, /^250 /, queued.transcript)
    const [ar] = await delivered('queued before the swap')
    assert.match(
      ar ?? '',
      new RegExp(
        `x-openpgp=pass .*body\\.openpgp-fingerprint=${scene!.fpr.alice} policy\\.ca=${scene!.fpr.ca}`,
      ),
    )
    assert.match(ar ?? '', /\(key from kept\)/)
  })

  it('an unvalidated ca= is reported and ignored; the swap shows as policy.key-change=', async (t) => {
    if (!ready(t)) return
    const first = await send(pf!.port, 'alice@example.net', scene!.mail.netLegit)
    assert.match(first.reply, /^250 /, first.transcript)
    const [ar1] = await delivered('net legit')
    assert.match(
      ar1 ?? '',
      /\(ca=[0-9A-F]{40} ignored: the _linksec\.example\.net answer was not DNSSEC-validated\)/,
    )
    assert.doesNotMatch(ar1 ?? '', /policy\.ca=/)
    scene!.swap('example.net')
    const swapped = await send(pf!.port, 'alice@example.net', scene!.mail.netAttacker)
    assert.match(swapped.reply, /^250 /, swapped.transcript)
    const [ar2] = await delivered('net attacker')
    assert.match(
      ar2 ?? '',
      new RegExp(
        `body\\.openpgp-fingerprint=${scene!.fpr.mallory2} policy\\.key-change=${scene!.fpr.alice2}`,
      ),
    )
    assert.match(serve!.output(), /sender key changed/)
  })
})
