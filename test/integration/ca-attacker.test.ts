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
import { after, before, describe } from 'node:test'
import { caAttackCases, startCaAttackScene, type CaAttackScene } from '../helpers/ca-attack'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from '../helpers/postfix'
import { dataReply, swaks } from '../helpers/swaks'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'

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
    if (!needRoot(t, 'postfix-up.sh needs root')) return false
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

  const subjectIs = (subject: string) => (m: { headers: [string, string][] }) =>
    m.headers.some(([n, v]) => n === 'Subject' && v === subject)
  caAttackCases(ready, () => ({
    scene: scene!,
    send: (from, data) => send(pf!.port, from, data),
    delivered,
    wasDelivered: (subject) => pf!.sinkMessages().some(subjectIs(subject)),
    keyChangeLogged: async () => assert.match(serve!.output(), /sender key changed/),
  }))
})
