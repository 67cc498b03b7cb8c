/**
 * The attacker scenario of issue 14, as a world any receiving MTA can be
 * pointed at (test/integration/ca-attacker.test.ts for Postfix,
 * ca-attacker-haraka.test.ts for Haraka): example.org and example.net each
 * run linksec with a domain CA (`linksec keys ca init`, then `keys add` of
 * alice's GnuPG key, so it is certified) and publish the certified key and
 * the CA key over WKD on a loopback HTTPS host, with `ca=<fingerprint>` in
 * `_linksec`: validated for example.org (the loopback DNS server sets AD, as
 * a validating resolver does), not for example.net.
 *
 * The messages are signed up front, so "queued" is alice's mail signed
 * before the swap. `swap(domain)` is the attacker who took the web
 * server: WKD then serves their key (alice's user ID, not certified).
 * `rotate(domain)` is the operator's `linksec keys rotate alice@DOMAIN` on
 * the sending side: WKD then serves the key file it leaves, the old key and
 * the new (CA-certified) one, for [keys] rotation_overlap.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { it, type TestContext } from 'node:test'
import { parseAddress, wkdHash } from '../../core/keys'
import * as S from './signers'
import { startWorld, type World } from './world'

const BIN = path.join(__dirname, '..', '..', 'bin', 'linksec.js')

export const wkdPath = (addr: string): string => {
  const a = parseAddress(addr)!
  return `openpgpkey.${a.domain}/.well-known/openpgpkey/${a.domain}/hu/${wkdHash(a.local)}`
}

/** The sending domain's own linksec: a CA, and alice's key added (certified). Returns the CA fingerprint and keys dir. */
function senderSide(
  dir: string,
  domain: string,
  alicePub: Buffer,
): { ca: string; keys: string; cli: (...args: string[]) => string } {
  const conf = path.join(dir, `sender-${domain}`)
  fs.mkdirSync(conf, { recursive: true })
  fs.writeFileSync(path.join(conf, 'linksec.ini'), `[main]\ndomain=${domain}\n`)
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args, '--config', conf], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    return r.stdout
  }
  const ca = /: ([0-9A-F]{40})/.exec(cli('keys', 'ca', 'init'))![1]!
  const file = path.join(dir, `alice-${domain}.pgp`)
  fs.writeFileSync(file, alicePub)
  cli('keys', 'add', file, `alice@${domain}`)
  return { ca, keys: path.join(conf, 'keys'), cli }
}

const fingerprint = (key: Buffer): string =>
  /fpr:+([0-9A-F]{40})/.exec(
    spawnSync('gpg', ['--with-colons', '--show-keys'], { input: key, encoding: 'utf8' }).stdout,
  )![1]!

export interface CaAttackScene {
  world: World
  /** ca: example.org's CA; alice, alice2: the legitimate keys (org, net); mallory2: the attacker's key for example.net. */
  fpr: { ca: string; alice: string; alice2: string; mallory2: string }
  /** legit, queued, attacker, beforeRotation (example.org); netLegit, netAttacker (example.net). */
  mail: Record<'legit' | 'queued' | 'attacker' | 'beforeRotation' | 'netLegit' | 'netAttacker', Buffer>
  /** WKD for alice@DOMAIN serves the attacker's key from now on. */
  swap(domain: 'example.org' | 'example.net'): void
  /** `linksec keys rotate alice@DOMAIN` at the sender; WKD serves the resulting file. Returns the file. */
  rotate(domain: 'example.org' | 'example.net'): Buffer
  /** [resolver], [net] and [keys] sections for a receiving linksec in this world. */
  ini: Record<string, Record<string, string | number | boolean>>
  close(): Promise<void>
}

export async function startCaAttackScene(): Promise<CaAttackScene> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-ca-attack-'))
  const kit = new S.SignerKit()
  try {
    const alice = kit.gpg({ address: 'alice@example.org', name: 'Alice' })
    const alice2 = kit.gpg({ address: 'alice@example.net', name: 'Alice' })
    const mallory = kit.gpg({ address: 'alice@example.org', name: 'Alice' })
    const mallory2 = kit.gpg({ address: 'alice@example.net', name: 'Alice' })
    const org = senderSide(dir, 'example.org', alice.publicKey())
    const net = senderSide(dir, 'example.net', alice2.publicKey())
    const read = (keys: string, a: string) => fs.readFileSync(path.join(keys, `${a}.pgp`))
    const world = await startWorld({
      zone: {
        // Signed zone, validating resolver: AD set.
        '_linksec.example.org': { TXT: [`v=LINKSEC1; level=1; ttl=60; ca=${org.ca}`], secure: true },
        // Not validated: ca= must be reported and ignored.
        '_linksec.example.net': { TXT: [`v=LINKSEC1; level=1; ttl=60; ca=${net.ca}`], secure: false },
      },
      hosts: ['openpgpkey.example.org', 'openpgpkey.example.net'],
      routes: {
        [wkdPath('alice@example.org')]: { body: read(org.keys, 'alice@example.org') },
        [wkdPath('openpgp-ca@example.org')]: { body: read(org.keys, 'openpgp-ca@example.org') },
        [wkdPath('alice@example.net')]: { body: read(net.keys, 'alice@example.net') },
        [wkdPath('openpgp-ca@example.net')]: { body: read(net.keys, 'openpgp-ca@example.net') },
      },
    })
    const signed = (who: S.TestSigner, from: string, subject: string) =>
      S.pgpMimeMessage(who, { from: `Alice <${from}>`, subject }, S.textPart(`${subject}\n`, { qp: true }))
    const mail = {
      legit: signed(alice, 'alice@example.org', 'legit'),
      queued: signed(alice, 'alice@example.org', 'queued before the swap'),
      attacker: signed(mallory, 'alice@example.org', 'attacker'),
      beforeRotation: signed(alice, 'alice@example.org', 'signed before the rotation'),
      netLegit: signed(alice2, 'alice@example.net', 'net legit'),
      netAttacker: signed(mallory2, 'alice@example.net', 'net attacker'),
    }
    const attackerKey = { 'example.org': mallory.publicKey(), 'example.net': mallory2.publicKey() }
    return {
      world,
      fpr: {
        ca: org.ca,
        alice: fingerprint(alice.publicKey()),
        alice2: fingerprint(alice2.publicKey()),
        mallory2: fingerprint(mallory2.publicKey()),
      },
      mail,
      swap: (domain) => world.https.route(wkdPath(`alice@${domain}`), { body: attackerKey[domain] }),
      rotate: (domain) => {
        const side = { 'example.org': org, 'example.net': net }[domain]
        side.cli('keys', 'rotate', `alice@${domain}`)
        const body = read(side.keys, `alice@${domain}`)
        world.https.route(wkdPath(`alice@${domain}`), { body })
        return body
      },
      ini: {
        keys: { methods: 'wkd', positive_ttl: 0 },
        resolver: { servers: world.dns.address },
        net: { ca_file: world.ca.caFile, https_port: world.https.port, allow_private_addresses: true },
      },
      async close() {
        await world.close()
        kit.cleanup()
        fs.rmSync(dir, { recursive: true, force: true })
      },
    }
  } catch (e) {
    kit.cleanup()
    fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
}

/** What a receiving MTA's test gives the shared cases below. */
export interface CaAttackReceiver {
  scene: CaAttackScene
  /** Sends a whole message; the reply to DATA and a transcript for failure messages. */
  send: (from: string, data: Buffer) => Promise<{ reply: string; transcript: string }>
  /** The x-openpgp Authentication-Results values (unfolded) of the delivered message with this Subject. */
  delivered: (subject: string) => Promise<string[]>
  /** Whether a message with this Subject reached the mailbox (checked after a refusal). */
  wasDelivered: (subject: string) => boolean
  /** Resolves once linksec has logged the "sender key changed" line. */
  keyChangeLogged: () => Promise<void>
}

/** The A-R of a pass by alice's certified key with the CA's property (`extra` between the verdict and the fingerprint). */
export const caPass = (scene: CaAttackScene, extra = 'header\\.from=alice@example\\.org '): RegExp =>
  new RegExp(
    `x-openpgp=pass ${extra}body\\.openpgp-fingerprint=${scene.fpr.alice} policy\\.ca=${scene.fpr.ca}`,
  )

/**
 * Cases 1–3 of the scenario, the same through every MTA: called inside the
 * MTA test's describe(); `ready` skips or fails as that test's tools decide.
 */
export function caAttackCases(ready: (t: TestContext) => boolean, receiver: () => CaAttackReceiver): void {
  it("alice's certified key passes, with policy.ca=", async (t) => {
    if (!ready(t)) return
    const { scene, send, delivered } = receiver()
    const r = await send('alice@example.org', scene.mail.legit)
    assert.match(r.reply, /^250 /, r.transcript)
    const [ar] = await delivered('legit')
    assert.match(ar ?? '', caPass(scene))
  })

  it("after the swap: the attacker's mail is refused 550 5.7.1, alice's queued mail still passes", async (t) => {
    if (!ready(t)) return
    const { scene, send, delivered, wasDelivered } = receiver()
    scene.swap('example.org')
    const bad = await send('alice@example.org', scene.mail.attacker)
    assert.match(
      bad.reply,
      /^550 5\.7\.1 .*alice@example\.org.*key not certified by the domain CA/,
      bad.transcript,
    )
    assert.ok(!wasDelivered('attacker'), 'the attacker was delivered')
    const queued = await send('alice@example.org', scene.mail.queued)
    assert.match(queued.reply, /^250 /, queued.transcript)
    const [ar] = await delivered('queued before the swap')
    assert.match(ar ?? '', caPass(scene, '.*'))
    assert.match(ar ?? '', /\(key from kept\)/)
  })

  it('an unvalidated ca= is reported and ignored; the swap shows as policy.key-change=', async (t) => {
    if (!ready(t)) return
    const { scene, send, delivered, keyChangeLogged } = receiver()
    const first = await send('alice@example.net', scene.mail.netLegit)
    assert.match(first.reply, /^250 /, first.transcript)
    const [ar1] = await delivered('net legit')
    assert.match(
      ar1 ?? '',
      /\(ca=[0-9A-F]{40} ignored: the _linksec\.example\.net answer was not DNSSEC-validated\)/,
    )
    assert.doesNotMatch(ar1 ?? '', /policy\.ca=/)
    scene.swap('example.net')
    const swapped = await send('alice@example.net', scene.mail.netAttacker)
    assert.match(swapped.reply, /^250 /, swapped.transcript)
    const [ar2] = await delivered('net attacker')
    assert.match(
      ar2 ?? '',
      new RegExp(`body\\.openpgp-fingerprint=${scene.fpr.mallory2} policy\\.key-change=${scene.fpr.alice2}`),
    )
    await keyChangeLogged()
  })
}
