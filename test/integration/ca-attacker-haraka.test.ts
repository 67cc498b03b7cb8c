/**
 * The attacker scenario of issue 14 (test/helpers/ca-attack.ts) with the
 * receiving side a real Haraka running the linksec plugin, installed from
 * node_modules as an operator does (test/helpers/haraka.ts): keys over WKD
 * from the loopback HTTPS host, `_linksec` from the loopback DNS server,
 * Haraka's reverse DNS answered by test_no_dns, no outbound (test_sink), so
 * no lookup leaves the machine. ca-attacker.test.ts is the same through
 * real Postfix.
 *
 * 1. alice's certified key passes, with policy.ca=.
 * 2. After the swap on WKD: the attacker's mail is refused at DATA 550 5.7.1
 *    "key not certified by the domain CA"; alice's mail signed before the
 *    swap still passes (the key kept from before).
 * 3. An unvalidated `ca=` is reported and ignored; the swap shows as
 *    policy.key-change=.
 * 4. The sending operator runs `linksec keys rotate`: WKD serves the old and
 *    the new key, and alice's mail signed with the old key before the
 *    rotation (still queued, say) passes during [keys] rotation_overlap.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import { caAttackCases, caPass, startCaAttackScene, type CaAttackScene } from '../helpers/ca-attack'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { dataReply, swaks } from '../helpers/swaks'
import { needTools, which } from '../helpers/tools'

const tools = { swaks: 'swaks', gpg: 'gnupg' }

describe('a key swapped on the sender domain WKD, with ca= declared, through a real Haraka', () => {
  let scene: CaAttackScene | undefined
  let mx: HarakaInstance | undefined

  before(async () => {
    if (!Object.keys(tools).every((t) => which(t))) return
    scene = await startCaAttackScene()
    mx = await startHaraka({
      plugins: ['tls', 'linksec', 'test_sink'],
      linksec: { log: { level: 'info' }, ...scene.ini },
    })
  })
  after(async () => {
    await mx?.stop()
    await scene?.close()
  })

  const ready = (t: Parameters<typeof needTools>[0]) => {
    if (!needTools(t, tools)) return false
    assert.ok(mx && scene, 'peers did not start')
    return true
  }

  const send = async (from: string, data: Buffer) => {
    const r = await swaks({ port: mx!.port, from, to: 'bob@receiver.test', data, timeoutMs: 60_000 })
    return { reply: dataReply(r.out), transcript: `${r.out}\n--- Haraka ---\n${mx!.log().slice(-3000)}` }
  }

  /** The x-openpgp Authentication-Results of the queued message with this Subject (unfolded). */
  const delivered = async (subject: string) => {
    // test_sink writes the message before Haraka answers 250, so it is there by now.
    const m = (await mx!.waitForQueued(1, 30_000)).find((x) => x.raw.includes(`\r\nSubject: ${subject}\r\n`))
    assert.ok(m, `${subject} was not queued`)
    const head = m.raw.slice(0, m.raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ')
    return head.split('\r\n').filter((l) => /^authentication-results:/i.test(l) && l.includes('x-openpgp'))
  }

  caAttackCases(ready, () => ({
    scene: scene!,
    send,
    delivered,
    wasDelivered: (subject) => mx!.queued().some((m) => m.raw.includes(`\r\nSubject: ${subject}\r\n`)),
    keyChangeLogged: () => mx!.waitForLog(/sender key changed/),
  }))

  it('after `linksec keys rotate` at the sender, mail signed with the old key passes during the overlap', async (t) => {
    if (!ready(t)) return
    // The operator answers the swap by rotating: WKD serves the old key and the new one, both certified.
    const published = scene!.rotate('example.org')
    const shown = spawnSync('gpg', ['--with-colons', '--show-keys'], { input: published, encoding: 'utf8' })
    // Primary keys only: each pub line's first fpr line.
    const fprs = [...shown.stdout.matchAll(/^pub:.*\n(?:(?!pub:).*\n)*?fpr:+([0-9A-F]{40}):/gm)].map(
      (m) => m[1],
    )
    assert.equal(fprs.length, 2, shown.stdout)
    assert.ok(fprs.includes(scene!.fpr.alice), 'the old key is not published during the overlap')
    const r = await send('alice@example.org', scene!.mail.beforeRotation)
    assert.match(r.reply, /^250 /, r.transcript)
    const [ar] = await delivered('signed before the rotation')
    assert.match(ar ?? '', caPass(scene!, '.*'))
    // From the WKD publication of the overlap, not from what the receiver remembered.
    assert.match(ar ?? '', /\(key from wkd/)
    assert.doesNotMatch(ar ?? '', /policy\.key-change=/)
  })
})
