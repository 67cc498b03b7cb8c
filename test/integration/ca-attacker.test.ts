/**
 * The attacker scenario of issue 14, through real Postfix with `linksec
 * serve` as its milter: example.org runs linksec with a domain CA
 * (`linksec keys ca init`, `keys add` of alice's GnuPG key) and publishes
 * the certified key and the CA key over WKD on a loopback HTTPS host, and
 * `ca=<fingerprint>` in a DNSSEC-validated `_linksec` answer (the loopback
 * DNS server sets AD, as a validating resolver does).
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
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseAddress, wkdHash } from '../../core/keys'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from '../helpers/postfix'
import * as S from '../helpers/signers'
import { isRoot, needTools, which } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

const AUTHSERV = 'mx.receiver.test'
const BIN = path.join(__dirname, '..', '..', 'bin', 'linksec.js')
const tools = { postfix: 'postfix', 'smtp-sink': 'postfix', swaks: 'swaks', gpg: 'gnupg' }

const wkdPath = (addr: string) => {
  const a = parseAddress(addr)!
  return `openpgpkey.${a.domain}/.well-known/openpgpkey/${a.domain}/hu/${wkdHash(a.local)}`
}

/** The sending domain's own linksec: a CA, and alice's key added (certified). Returns the CA fingerprint and keys dir. */
function senderSide(dir: string, domain: string, alicePub: Buffer): { ca: string; keys: string } {
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
  return { ca, keys: path.join(conf, 'keys') }
}

async function send(
  port: number,
  from: string,
  data: Buffer,
): Promise<{ reply: string; transcript: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-swaks-'))
  const file = path.join(dir, 'message.eml')
  fs.writeFileSync(file, data)
  const child = spawn(
    'swaks',
    [
      '--server',
      `127.0.0.1:${port}`,
      '--from',
      from,
      '--to',
      'bob@receiver.test',
      '--timeout',
      '30',
      '--data',
      `@${file}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let transcript = ''
  child.stdout.on('data', (b: Buffer) => (transcript += b.toString()))
  child.stderr.on('data', (b: Buffer) => (transcript += b.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  await new Promise((resolve) => child.on('close', resolve))
  clearTimeout(timer)
  fs.rmSync(dir, { recursive: true, force: true })
  const lines = transcript.split(/\r?\n/)
  const dot = lines.findIndex((l) => /^ [-~]> \.$/.test(l))
  const reply = dot >= 0 ? /^<\S*\s+(\d{3}[ -].*)$/.exec(lines[dot + 1] ?? '') : null
  return { reply: reply?.[1] ?? '', transcript }
}

describe('a key swapped on the sender domain WKD, with ca= declared, through real Postfix', () => {
  let world: World | undefined
  let kit: S.SignerKit | undefined
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined
  let dir = ''
  const fpr: Record<string, string> = {}
  const mail: Record<string, Buffer> = {}

  before(async () => {
    if (!Object.keys(tools).every((t) => which(t)) || !isRoot()) return
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-ca-attack-'))
    kit = new S.SignerKit()
    const alice = kit.gpg({ address: 'alice@example.org', name: 'Alice' })
    const alice2 = kit.gpg({ address: 'alice@example.net', name: 'Alice' })
    const mallory = kit.gpg({ address: 'alice@example.org', name: 'Alice' })
    const mallory2 = kit.gpg({ address: 'alice@example.net', name: 'Alice' })
    const org = senderSide(dir, 'example.org', alice.publicKey())
    const net = senderSide(dir, 'example.net', alice2.publicKey())
    fpr.ca = org.ca
    const read = (keys: string, a: string) => fs.readFileSync(path.join(keys, `${a}.pgp`))
    world = await startWorld({
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
    mail.legit = signed(alice, 'alice@example.org', 'legit')
    mail.queued = signed(alice, 'alice@example.org', 'queued before the swap')
    mail.attacker = signed(mallory, 'alice@example.org', 'attacker')
    mail.netLegit = signed(alice2, 'alice@example.net', 'net legit')
    mail.netAttacker = signed(mallory2, 'alice@example.net', 'net attacker')
    fpr.alice = /fpr:+([0-9A-F]{40})/.exec(
      spawnSync('gpg', ['--with-colons', '--show-keys'], { input: alice.publicKey(), encoding: 'utf8' })
        .stdout,
    )![1]!
    fpr.mallory = /fpr:+([0-9A-F]{40})/.exec(
      spawnSync('gpg', ['--with-colons', '--show-keys'], { input: mallory2.publicKey(), encoding: 'utf8' })
        .stdout,
    )![1]!
    fpr.alice2 = /fpr:+([0-9A-F]{40})/.exec(
      spawnSync('gpg', ['--with-colons', '--show-keys'], { input: alice2.publicKey(), encoding: 'utf8' })
        .stdout,
    )![1]!
    // The swapped keys, for later.
    mail.malloryKey = mallory.publicKey()
    mail.mallory2Key = mallory2.publicKey()
    const ini = world.config()
    serve = await startLinksecServe({
      ini: {
        main: { authserv_id: AUTHSERV },
        log: { level: 'info' },
        keys: { methods: 'wkd', positive_ttl: 0 },
        resolver: { servers: ini.resolver.servers.join(',') },
        net: { ca_file: ini.net.ca_file, https_port: ini.net.https_port, allow_private_addresses: true },
      },
    })
    pf = await startPostfix({ milter: serve.milterAddress, milterDefaultAction: 'tempfail' })
  })
  after(async () => {
    await pf?.stop()
    await serve?.stop()
    await world?.close()
    kit?.cleanup()
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  const ready = (t: Parameters<typeof needTools>[0]) => {
    if (!needTools(t, tools)) return false
    if (!isRoot()) {
      t.skip('postfix-up.sh needs root')
      return false
    }
    assert.ok(pf && serve && world, 'peers did not start')
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
    const r = await send(pf!.port, 'alice@example.org', mail.legit!)
    assert.match(r.reply, /^250 /, r.transcript)
    const [ar] = await delivered('legit')
    assert.match(
      ar ?? '',
      new RegExp(
        `x-openpgp=pass header\\.from=alice@example\\.org body\\.openpgp-fingerprint=${fpr.alice} policy\\.ca=${fpr.ca}`,
      ),
    )
  })

  it("after the swap: the attacker's mail is refused 550 5.7.1, alice's queued mail still passes", async (t) => {
    if (!ready(t)) return
    world!.https.route(wkdPath('alice@example.org'), { body: mail.malloryKey! })
    const bad = await send(pf!.port, 'alice@example.org', mail.attacker!)
    assert.match(
      bad.reply,
      /^550 5\.7\.1 .*alice@example\.org.*key not certified by the domain CA/,
      bad.transcript,
    )
    const queued = await send(pf!.port, 'alice@example.org', mail.queued!)
    assert.match(queued.reply, /^250 /, queued.transcript)
    const [ar] = await delivered('queued before the swap')
    assert.match(
      ar ?? '',
      new RegExp(`x-openpgp=pass .*body\\.openpgp-fingerprint=${fpr.alice} policy\\.ca=${fpr.ca}`),
    )
    assert.match(ar ?? '', /\(key from kept\)/)
  })

  it('an unvalidated ca= is reported and ignored; the swap shows as policy.key-change=', async (t) => {
    if (!ready(t)) return
    const first = await send(pf!.port, 'alice@example.net', mail.netLegit!)
    assert.match(first.reply, /^250 /, first.transcript)
    const [ar1] = await delivered('net legit')
    assert.match(
      ar1 ?? '',
      /\(ca=[0-9A-F]{40} ignored: the _linksec\.example\.net answer was not DNSSEC-validated\)/,
    )
    assert.doesNotMatch(ar1 ?? '', /policy\.ca=/)
    world!.https.route(wkdPath('alice@example.net'), { body: mail.mallory2Key! })
    const swapped = await send(pf!.port, 'alice@example.net', mail.netAttacker!)
    assert.match(swapped.reply, /^250 /, swapped.transcript)
    const [ar2] = await delivered('net attacker')
    assert.match(
      ar2 ?? '',
      new RegExp(`body\\.openpgp-fingerprint=${fpr.mallory} policy\\.key-change=${fpr.alice2}`),
    )
    assert.match(serve!.output(), /sender key changed/)
  })
})
