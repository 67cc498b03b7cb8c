/**
 * `linksec send` to real receivers that run linksec themselves: a real
 * Haraka with the linksec plugin (test/helpers/haraka.ts) and a real Postfix
 * with `linksec serve` as its milter (test/helpers/postfix.ts), each found
 * through an MX record of the test DNS (test/helpers/world.ts) pointing at
 * loopback; the sender's and the recipient's keys published over WKD on the
 * world's HTTPS server. The receiving linksec verifies the signature
 * (`x-openpgp=pass` in its Authentication-Results); with --encrypt the copy
 * at Postfix's sink decrypts with the recipient's gpg and shows the Subject
 * inside only; a tagged message to a Postfix without STARTTLS is refused
 * (69) and reaches nobody. Real mutt, its `sendmail` set to `linksec send`,
 * sends a message that arrives signed and verifies with gpg.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import { parseAddress, wkdHash } from '../../core/keys'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from '../helpers/postfix'
import * as S from '../helpers/signers'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'
import { verifyWith } from '../helpers/verifiers'
import { startWorld, type World } from '../helpers/world'

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')
const AUTHSERV = 'mx.receiver.test'
const ALICE = 'alice@sender.test'

function run(
  cmd: string,
  args: string[],
  stdin: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
    child.stdin.end(stdin)
  })
}
const send = (args: string[], stdin: string) => run(process.execPath, [BIN, 'send', ...args], stdin)

const gpg = (home: string, args: string[], input?: Buffer) =>
  execFileSync('gpg', ['--batch', '--yes', '--quiet', '--no-auto-key-locate', ...args], {
    env: { ...process.env, GNUPGHOME: home },
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
  })

const wkdPath = (address: string) => {
  const a = parseAddress(address)!
  return `openpgpkey.${a.domain}/.well-known/openpgpkey/${a.domain}/hu/${wkdHash(a.local)}`
}

/** Authentication-Results fields of a raw message, unfolded (RFC 5322 §2.2.3). */
const arFields = (raw: string) =>
  raw
    .slice(0, raw.search(/\r?\n\r?\n/))
    .replace(/\r?\n(?=[ \t])/g, '')
    .split(/\r?\n/)
    .filter((l) => /^Authentication-Results:/i.test(l))

describe('linksec send to receivers that run linksec', { skip: S.missingSigners(['gpg']) }, () => {
  let kit: S.SignerKit
  let world: World
  let senderDir: string
  let bobHome: string
  let haraka: HarakaInstance | undefined
  let rtlsHaraka: HarakaInstance | undefined
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined
  let plainPf: PostfixInstance | undefined
  const postfixOk = () => Boolean(which('postfix') && isRoot())

  let n = 0
  const message = (to: string, extra = '') =>
    `From: Alice <${ALICE}>\r\nTo: ${to}\r\nSubject: Quarterly statement\r\nMessage-ID: <p${++n}@sender.test>\r\n${extra}\r\nYour balance is 42.\r\n`

  before(async () => {
    kit = new S.SignerKit()
    bobHome = kit.scratch('bob')
    gpg(bobHome, [
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      '',
      '--quick-gen-key',
      'Bob <bob@postfix.test>',
      'future-default',
      'default',
      'never',
    ])
    world = await startWorld({
      zone: {
        'haraka.test': { MX: ['10 mx.haraka.test'] },
        'mx.haraka.test': { A: ['127.0.0.1'] },
        'postfix.test': { MX: ['10 mx.postfix.test'] },
        'mx.postfix.test': { A: ['127.0.0.1'] },
        'plain-postfix.test': { MX: ['10 mx.plain-postfix.test'] },
        'rtls.test': { MX: ['10 mx.rtls.test'] },
        'mx.rtls.test': { A: ['127.0.0.1'] },
        'mx.plain-postfix.test': { A: ['127.0.0.1'] },
      },
      hosts: ['openpgpkey.sender.test', 'openpgpkey.postfix.test'],
      routes: { [wkdPath('bob@postfix.test')]: { body: gpg(bobHome, ['--export', 'bob@postfix.test']) } },
    })
    // Alice's key, made the way an operator does, published over WKD for the receivers.
    senderDir = world.configIni()
    execFileSync(process.execPath, [BIN, 'keys', 'generate', ALICE, '--config', senderDir])
    world.https.route(wkdPath(ALICE), { body: fs.readFileSync(path.join(senderDir, 'keys', `${ALICE}.pgp`)) })

    const receiverIni = {
      main: { authserv_id: AUTHSERV },
      log: { level: 'warn' },
      keys: { methods: 'wkd' },
      policy: { dane: false },
      resolver: { servers: world.dns.address, timeout_ms: 2000 },
      net: { ca_file: world.ca.caFile, https_port: world.https.port, allow_private_addresses: true },
    }
    haraka = await startHaraka({ plugins: ['tls', 'linksec', 'test_sink'], linksec: receiverIni })
    // A certificate from the world's CA, so a REQUIRETLS sender can verify it (RFC 8689 §4.2.1).
    const leaf = await world.ca.leaf(['mx.rtls.test'])
    rtlsHaraka = await startHaraka({
      plugins: ['tls', 'linksec', 'test_sink'],
      linksec: receiverIni,
      tlsKeyPem: leaf.key,
      tlsCertPem: leaf.cert,
    })
    if (postfixOk()) {
      serve = await startLinksecServe({ ini: receiverIni })
      pf = await startPostfix({ milter: serve.milterAddress, milterDefaultAction: 'tempfail' })
      plainPf = await startPostfix({ milter: serve.milterAddress, tls: false })
    }
  })
  after(async () => {
    await Promise.allSettled([haraka?.stop(), rtlsHaraka?.stop(), pf?.stop(), plainPf?.stop()])
    await serve?.stop()
    await world?.close()
    kit?.cleanup()
  })

  /** A config directory of the sender delivering to PORT, with alice's keys. */
  const senderFor = (port: number) => {
    const dir = world.configIni({
      log: { level: 'warn' },
      keys: { methods: 'wkd' },
      policy: { dane: false },
      send: { port },
    })
    for (const sub of ['keys', 'secret'])
      fs.cpSync(path.join(senderDir, sub), path.join(dir, sub), { recursive: true })
    return dir
  }
  const alicePublic = () => fs.readFileSync(path.join(senderDir, 'keys', `${ALICE}.pgp`))
  const needPostfix = (t: TestContext) => {
    if (!needTools(t, { postfix: 'postfix', 'smtp-sink': 'postfix' })) return false
    if (!needRoot(t, 'postfix-up.sh needs root')) return false
    assert.ok(pf && plainPf && serve, 'Postfix or linksec serve did not start')
    return true
  }

  it('Haraka with linksec: delivered over STARTTLS to the MX of the test DNS; its linksec writes x-openpgp=pass', async () => {
    const before = haraka!.queued().length
    const r = await send(
      ['-i', '--config', senderFor(haraka!.port), 'bob@haraka.test'],
      message('bob@haraka.test'),
    )
    assert.equal(r.code, 0, r.err)
    assert.match(
      r.out,
      /^bob@haraka\.test: sent to mx\.haraka\.test \[127\.0\.0\.1\]:\d+ over TLSv1\.[23] \(signed\): 250/m,
    )
    const q = await haraka!.waitForQueued(before + 1)
    const got = q.find((m) => m.raw.includes(`<p${n}@sender.test>`))!
    assert.deepEqual(got.rcptTo, ['bob@haraka.test'])
    assert.ok(
      arFields(got.raw).some((f) =>
        new RegExp(`^Authentication-Results: ${AUTHSERV}; x-openpgp=pass header\\.from=${ALICE} `).test(f),
      ),
      arFields(got.raw).join('\n'),
    )
  })

  it('--requiretls to Haraka with linksec (REQUIRETLS offered after STARTTLS): MAIL FROM carries REQUIRETLS, delivered', async () => {
    const before = rtlsHaraka!.queued().length
    const r = await send(
      ['-i', '--requiretls', '--config', senderFor(rtlsHaraka!.port), 'bob@rtls.test'],
      message('bob@rtls.test'),
    )
    assert.equal(r.code, 0, r.err)
    assert.match(
      r.out,
      /^bob@rtls\.test: sent to mx\.rtls\.test \[127\.0\.0\.1\]:\d+ over TLSv1\.[23] with REQUIRETLS \(signed\): 250/m,
    )
    const q = await rtlsHaraka!.waitForQueued(before + 1)
    const got = q.find((m) => m.raw.includes(`<p${n}@sender.test>`))!
    assert.deepEqual(got.rcptTo, ['bob@rtls.test'])
    // The receiving linksec accepted the MAIL parameter (plugins/declare.ts notes it).
    assert.equal((got.notes.linksec as { requiretls?: boolean } | undefined)?.requiretls, true)
  })

  it('Postfix with linksec serve as milter: delivered to its MX; the milter writes x-openpgp=pass', async (t) => {
    if (!needPostfix(t)) return
    const before = pf!.sinkMessages().length
    const r = await send(['--config', senderFor(pf!.port), 'bob@postfix.test'], message('bob@postfix.test'))
    assert.equal(r.code, 0, r.err)
    assert.match(
      r.out,
      /^bob@postfix\.test: sent to mx\.postfix\.test \[127\.0\.0\.1\]:\d+ over TLSv1\.[23] \(signed\): 250/m,
    )
    const id = `<p${n}@sender.test>`
    const [m] = (await pf!.waitForSink(before + 1, 30_000, (x) => x.message.includes(id))).filter((x) =>
      x.message.includes(id),
    )
    const ar = m!.headers.filter(([k]) => k.toLowerCase() === 'authentication-results').map(([, v]) => v)
    assert.ok(
      ar.some((v) => new RegExp(`^${AUTHSERV}; x-openpgp=pass header\\.from=${ALICE} `).test(v)),
      ar.join('\n'),
    )
  })

  it("--encrypt to Postfix: the copy at the sink decrypts with bob's gpg, Subject only inside, signed inside", async (t) => {
    if (!needPostfix(t)) return
    const before = pf!.sinkMessages().length
    const r = await send(['-t', '--encrypt', '--config', senderFor(pf!.port)], message('bob@postfix.test'))
    assert.equal(r.code, 0, r.err)
    assert.match(r.out, /^bob@postfix\.test: sent to .* \(signed, encrypted\): 250/m)
    const id = `<p${n}@sender.test>`
    const [m] = (await pf!.waitForSink(before + 1, 30_000, (x) => x.message.includes(id))).filter((x) =>
      x.message.includes(id),
    )
    const raw = m!.message
    const outer = raw.slice(0, raw.search(/\r?\n\r?\n/))
    assert.doesNotMatch(outer, /^Subject:/im)
    assert.match(outer, /^Content-Type: multipart\/encrypted;/im)
    assert.doesNotMatch(raw, /Quarterly|balance/)
    const armored = /-----BEGIN PGP MESSAGE-----[\s\S]*?-----END PGP MESSAGE-----/.exec(raw)![0]
    const inner = gpg(
      bobHome,
      ['--pinentry-mode', 'loopback', '--passphrase', '', '--decrypt'],
      Buffer.from(armored),
    ).toString('latin1')
    assert.match(inner, /^Subject: Quarterly statement\r?$/m)
    assert.match(inner, /hp="cipher"/)
    const g = verifyWith(
      'gpg',
      kit.scratch('verify-enc'),
      alicePublic(),
      Buffer.from(inner.replace(/\r?\n/g, '\r\n'), 'latin1'),
    )
    assert.ok(g.ok, g.said)
  })

  it('a tagged message to a Postfix without STARTTLS: 69, the hop named, nothing at its sink', async (t) => {
    if (!needPostfix(t)) return
    const before = plainPf!.sinkMessages().length
    const r = await send(
      ['--config', senderFor(plainPf!.port), 'bob@plain-postfix.test'],
      message('bob@plain-postfix.test', 'Link-Security-Required: 3\r\n'),
    )
    assert.equal(r.code, 69, r.out + r.err)
    assert.equal(r.out, '')
    assert.match(
      r.err,
      /^bob@plain-postfix\.test: not sent: mx\.plain-postfix\.test \[127\.0\.0\.1\]:\d+: .*STARTTLS/m,
    )
    await new Promise((ok) => setTimeout(ok, 500))
    assert.equal(plainPf!.sinkMessages().length, before)
    assert.equal(plainPf!.queued(), 0)
  })

  it('--requiretls (an untagged message) to Postfix: without STARTTLS 69, with its self-signed certificate 75; nothing at either sink', async (t) => {
    if (!needPostfix(t)) return
    const plainBefore = plainPf!.sinkMessages().length
    const tlsBefore = pf!.sinkMessages().length
    const plain = await send(
      ['--requiretls', '--config', senderFor(plainPf!.port), 'bob@plain-postfix.test'],
      message('bob@plain-postfix.test'),
    )
    assert.equal(plain.code, 69, plain.out + plain.err)
    assert.match(plain.err, /^bob@plain-postfix\.test: not sent: .*\(REQUIRETLS\) was not sent: .*STARTTLS/m)
    // Postfix 3.7 offers no REQUIRETLS; its certificate is checked first and does not verify.
    const tls = await send(
      ['--requiretls', '--config', senderFor(pf!.port), 'bob@postfix.test'],
      message('bob@postfix.test'),
    )
    assert.equal(tls.code, 75, tls.out + tls.err)
    assert.match(tls.err, /^bob@postfix\.test: not sent: .*\(REQUIRETLS\) was not sent: the certificate of /m)
    assert.equal(plain.out + tls.out, '')
    await new Promise((ok) => setTimeout(ok, 500))
    assert.equal(plainPf!.sinkMessages().length, plainBefore)
    assert.equal(pf!.sinkMessages().length, tlsBefore)
  })

  it('mutt with sendmail="linksec send": the message arrives signed at Haraka, x-openpgp=pass, and gpg verifies it', async (t) => {
    if (!needTools(t, { mutt: 'mutt' })) return
    const home = kit.scratch('mutt-home')
    const dir = senderFor(haraka!.port)
    const muttrc = path.join(home, 'muttrc')
    fs.writeFileSync(
      muttrc,
      [
        `set sendmail="${process.execPath} ${BIN} send --config ${dir}"`,
        `set from="Alice <${ALICE}>"`,
        'set use_from=yes',
        'set envelope_from=yes',
        // No lookups of our own name (the system resolver is off limits) and no mailbox.
        'set hostname="sender.test"',
        'set copy=no',
        'set record=""',
        `set folder="${home}/Mail"`,
        `set spoolfile="${home}/Mail/inbox"`,
        'set charset="utf-8"',
        'set send_charset="us-ascii:utf-8"',
        '',
      ].join('\n'),
    )
    const before = haraka!.queued().length
    const r = await run(
      'mutt',
      ['-n', '-F', muttrc, '-s', 'From mutt', 'bob@haraka.test'],
      'Sent with mutt through linksec.\n',
      {
        ...process.env,
        HOME: home,
        MAIL: path.join(home, 'Mail', 'inbox'),
        EMAIL: ALICE,
      },
    )
    assert.equal(r.code, 0, r.out + r.err)
    const q = await haraka!.waitForQueued(before + 1)
    const got = q.find((m) => m.raw.includes('Subject: From mutt'))
    assert.ok(got, 'the mutt message arrived')
    assert.equal(got.mailFrom, ALICE)
    assert.match(got.raw, /^Content-Type: multipart\/signed; micalg=pgp-sha\d+;/im)
    assert.ok(
      arFields(got.raw).some((f) => f.includes(`x-openpgp=pass header.from=${ALICE}`)),
      arFields(got.raw).join('\n'),
    )
    // What Haraka added in front is not signed; gpg checks the signed part as it arrived.
    const g = verifyWith('gpg', kit.scratch('verify-mutt'), alicePublic(), Buffer.from(got.raw, 'latin1'))
    assert.ok(g.ok, g.said)
  })
})
