/**
 * The round trip the sending side exists for, between two real Postfix 3.7
 * servers on loopback, each with its own `linksec serve` and a real OpenDKIM
 * (Debian opendkim):
 *
 *   domain A (sign.test): the submission service of examples/postfix
 *     (submission.master.cf, only ports changed): Cyrus SASL, then the
 *     milters linksec (signing) and OpenDKIM (signing) in that order; its
 *     next hop is B. A's linksec publishes alice's key over WKD on its HTTP
 *     listener, fronted by the test HTTPS server (the reverse proxy with a
 *     certificate an operator puts before it) at openpgpkey.sign.test.
 *   domain B (b.test): linksec verifying, keys found over WKD through the
 *     loopback test DNS, where `_linksec.sign.test` says sig=required; and
 *     OpenDKIM verifying with A's DKIM key (TestPublicKeys).
 *
 * Shown: alice's mail arrives at B's sink with x-openpgp=pass from B's
 * linksec and dkim=pass from B's OpenDKIM: the DKIM signature made after
 * linksec's body replacement verifies, so the milter order is right. The
 * same kind of message sent to B directly, claiming alice's From without
 * A's signature, is refused 550 5.7.x with a sentence. Alice's own
 * encrypted mail (gpg --sign --encrypt: the signature inside the ciphertext,
 * which B cannot see) passes at B because A signed outside. Domain A as a
 * real Haraka (auth_flat_file, linksec signing, outbound pinned to B) gets
 * x-openpgp=pass at B too. And the same service
 * with OpenDKIM before linksec gets dkim=fail at B.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { dkimKeyPair } from '../../bench/lib/dkim-sign'
import { startOpendkim, startOpendkimSigner, type RunningMilter } from '../../bench/lib/milters'
import { wkdHash } from '../../core/keys'
import { toCrlf } from '../../core/mime'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from '../helpers/postfix'
import { startHaraka } from '../helpers/haraka'
import { freePort } from '../helpers/ports'
import * as W from '../helpers/sign-world'
import { encryptedPart } from '../helpers/signers'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

const TOOLS = { postfix: 'postfix', swaks: 'swaks', saslpasswd2: 'sasl2-bin', opendkim: 'opendkim' }
const B_DOMAIN = 'b.test'
const EXAMPLE = path.resolve(__dirname, '..', '..', '..', 'examples', 'postfix', 'submission.master.cf')
const WKD_HOST = `openpgpkey.${W.SIGN_DOMAIN}`

/** Forwards a WKD request to A's linksec HTTP listener (plain HTTP on loopback). */
function proxyTo(httpAddress: string): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const [host, port] = httpAddress.split(':') as [string, string]
  return (req, res) => {
    const out = http.request(
      { host, port: Number(port), path: req.url, method: req.method, headers: { host: WKD_HOST } },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers)
        r.pipe(res)
      },
    )
    out.on('error', () => res.writeHead(502).end())
    out.end()
  }
}

describe('A signs, B verifies: two real Postfix servers, linksec and OpenDKIM on each', () => {
  let world: World | undefined
  let serveA: ServeInstance | undefined
  let serveB: ServeInstance | undefined
  let dkimA: RunningMilter | undefined
  let dkimB: RunningMilter | undefined
  let pfA: PostfixInstance | undefined
  let pfB: PostfixInstance | undefined
  let scratch: string
  let submissionPort = 0
  /** The same service with the milters the wrong way round (OpenDKIM first). */
  let reversedPort = 0
  let ready = false

  before(async () => {
    if (!Object.keys(TOOLS).every((tool) => which(tool)) || !isRoot()) return
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-roundtrip-'))
    fs.chmodSync(scratch, 0o755)
    world = await startWorld({
      zone: { [`_linksec.${W.SIGN_DOMAIN}`]: { TXT: ['v=LINKSEC1; level=3; ttl=3600; sig=required'] } },
      hosts: [WKD_HOST],
    })
    serveA = await startLinksecServe({
      ini: {
        main: { authserv_id: 'mx.sign.test', domain: W.SIGN_DOMAIN },
        log: { level: 'warn' },
        resolver: { servers: world.dns.address },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'local' },
        sign: { enabled: true },
      },
    })
    W.generateKey(serveA.configDir, W.ALICE)
    const hu = `/.well-known/openpgpkey/${W.SIGN_DOMAIN}/hu/${wkdHash('alice')}`
    const forward = proxyTo(serveA.httpAddress)
    world.https.route(`${WKD_HOST}${hu}`, forward)
    world.https.route(`${WKD_HOST}/.well-known/openpgpkey/${W.SIGN_DOMAIN}/policy`, forward)
    serveB = await startLinksecServe({
      ini: {
        main: { authserv_id: 'mx.b.test', domain: B_DOMAIN },
        log: { level: 'warn' },
        resolver: { servers: world.dns.address, timeout_ms: 2000 },
        net: { ca_file: world.ca.caFile, https_port: world.https.port, allow_private_addresses: true },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'wkd' },
      },
    })
    const dkim = dkimKeyPair()
    const keyFile = path.join(scratch, 's1.private')
    fs.writeFileSync(keyFile, dkim.privateKeyPem)
    const keysFile = path.join(scratch, 'dkim-keys')
    fs.writeFileSync(keysFile, `s1._domainkey.${W.SIGN_DOMAIN} ${dkim.txt}\n`)
    fs.chmodSync(keysFile, 0o644)
    dkimA = await startOpendkimSigner(W.SIGN_DOMAIN, keyFile)
    dkimB = await startOpendkim(keysFile, 'mx.b.test')
    pfB = await startPostfix({ milter: `${serveB.milterAddress}, ${dkimB.socket}` })
    submissionPort = await freePort()
    reversedPort = await freePort()
    // A: no smtpd_milters in main.cf; the submission service of the example brings both milters.
    pfA = await startPostfix({ extraMainCf: [`relayhost = [127.0.0.1]:${pfB.port}`] })
    const text = fs.readFileSync(EXAMPLE, 'utf8')
    const service = (port: number, milters: string) =>
      text
        .replace(/^submission inet/m, `127.0.0.1:${port} inet`)
        .replace('inet:127.0.0.1:8891,inet:127.0.0.1:8892', milters)
        .replace('postfix/submission', `postfix/submission-${port}`)
    assert.match(text, /smtpd_milters=inet:127\.0\.0\.1:8891,inet:127\.0\.0\.1:8892$/m, 'linksec first')
    fs.appendFileSync(
      path.join(pfA.conf, 'master.cf'),
      `\n${service(submissionPort, `${serveA.milterAddress},${dkimA.socket}`)}` +
        `\n${service(reversedPort, `${dkimA.socket},${serveA.milterAddress}`)}`,
    )
    W.saslConfig(pfA.conf, scratch, [W.ALICE])
    await pfA.reload()
    ready = true
  })

  after(async () => {
    await pfA?.stop()
    await pfB?.stop()
    await dkimA?.stop()
    await dkimB?.stop()
    await serveA?.stop()
    await serveB?.stop()
    await world?.close()
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true })
  })

  const skipUnlessReady = (t: Parameters<typeof needTools>[0]): boolean => {
    if (!needTools(t, TOOLS)) return false
    if (!needRoot(t, 'postfix start is reserved for root')) return false
    assert.ok(ready, 'peers did not start')
    return true
  }

  it("alice's mail through A's submission: B's linksec says x-openpgp=pass, B's OpenDKIM dkim=pass", async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: submissionPort,
      from: W.ALICE,
      login: W.ALICE,
      to: `carol@${B_DOMAIN}`,
      message: W.mixedMessage(W.ALICE, 'rt-signed'),
    })
    assert.match(r.dataReply, /^250 /, r.transcript)
    const got = await pfB!.waitForSink(1, 60_000, (m) => m.message.includes('Subject: rt-signed'))
    const m = got.find((x) => x.message.includes('Subject: rt-signed'))!
    const ar = m.headers.filter(([k]) => k.toLowerCase() === 'authentication-results').map(([, v]) => v)
    assert.ok(
      ar.some((v) => /^mx\.b\.test;.*x-openpgp=pass/s.test(v)),
      `B's linksec: ${ar.join(' | ')}\n${serveB!.output().slice(-2000)}`,
    )
    assert.ok(
      ar.some((v) => /^mx\.b\.test;.*dkim=pass.*header\.d=sign\.test/s.test(v)),
      `B's OpenDKIM: ${ar.join(' | ')}`,
    )
    assert.match(m.message, /^Content-Type: multipart\/signed;/im)
    assert.ok(
      world!.https.requests.some((q) => q.path.includes('/hu/')),
      'B fetched the key over WKD',
    )
  })

  it('an encrypted message from alice (gpg --sign --encrypt, signed inside) passes at B: A signed outside', async (t) => {
    if (!skipUnlessReady(t)) return
    if (!needTools(t, { gpg: 'gnupg' })) return
    const home = fs.mkdtempSync(path.join(scratch, 'gnupg-'))
    const gpg = (args: string[], input?: Buffer) =>
      execFileSync(
        'gpg',
        [
          '--batch',
          '--yes',
          '--quiet',
          '--no-auto-key-locate',
          '--pinentry-mode',
          'loopback',
          '--passphrase',
          '',
          ...args,
        ],
        { env: { ...process.env, GNUPGHOME: home }, input, stdio: ['pipe', 'pipe', 'pipe'] },
      )
    try {
      // Alice's own client key (not the one A's linksec holds) and Carol's, to encrypt to.
      gpg(['--quick-gen-key', `Alice <${W.ALICE}>`, 'ed25519', 'sign', 'never'])
      gpg(['--quick-gen-key', `Carol <carol@${B_DOMAIN}>`, 'default', 'default', 'never'])
      const inner = Buffer.from('Content-Type: text/plain\r\n\r\nonly for carol\r\n')
      const armored = gpg(
        [
          '--sign',
          '--encrypt',
          '--armor',
          '--trust-model',
          'always',
          '-u',
          W.ALICE,
          '-r',
          `carol@${B_DOMAIN}`,
        ],
        inner,
      ).toString('latin1')
      const message = toCrlf(
        Buffer.concat([
          Buffer.from(
            `From: <${W.ALICE}>\nTo: <carol@${B_DOMAIN}>\nSubject: rt-encrypted\nMessage-ID: <rt-encrypted@${W.SIGN_DOMAIN}>\nMIME-Version: 1.0\n`,
          ),
          encryptedPart(armored),
        ]),
      )
      const r = await W.submit({
        port: submissionPort,
        from: W.ALICE,
        login: W.ALICE,
        to: `carol@${B_DOMAIN}`,
        message,
      })
      assert.match(r.dataReply, /^250 /, r.transcript)
      const got = await pfB!.waitForSink(1, 60_000, (m) => m.message.includes('Subject: rt-encrypted'))
      const m = got.find((x) => x.message.includes('Subject: rt-encrypted'))!
      const ar = m.headers.filter(([k]) => k.toLowerCase() === 'authentication-results').map(([, v]) => v)
      assert.ok(
        ar.some((v) => /^mx\.b\.test;.*x-openpgp=pass/s.test(v)),
        ar.join(' | '),
      )
      assert.match(m.message, /^Content-Type: multipart\/signed;/im)
      assert.match(m.message, /Content-Type: multipart\/encrypted;/i, 'the ciphertext is inside, untouched')
      assert.ok(
        m.message.includes(armored.trim().split('\n')[3]!),
        'the ciphertext is byte for byte what gpg made',
      )
    } finally {
      spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: home } })
    }
  })

  it('domain A on Haraka instead (auth_flat_file, linksec signing, outbound to B): B says x-openpgp=pass', async (t) => {
    if (!skipUnlessReady(t)) return
    // The same key as A's Postfix side holds, so the key A publishes over WKD is the one it signs with.
    const h = await startHaraka({
      plugins: ['tls', 'auth/flat_file', 'linksec', 'test_mx'],
      testMx: { [B_DOMAIN]: `127.0.0.1:${pfB!.port}` },
      config: { 'auth_flat_file.ini': `[core]\nmethods=PLAIN\n\n[users]\n${W.ALICE}=${W.PASSWORD}\n` },
      linksec: {
        main: { domain: W.SIGN_DOMAIN },
        resolver: { servers: world!.dns.address },
        policy: { txt: false, mta_sts: false, dane: false },
        keys: { methods: 'local' },
        sign: { enabled: true },
      },
    })
    try {
      const imported = spawnSync(
        process.execPath,
        [
          path.resolve(__dirname, '..', '..', 'bin', 'linksec.js'),
          'keys',
          'import-secret',
          path.join(serveA!.configDir, 'secret', `${W.ALICE}.key`),
          '--config',
          path.join(h.dir, 'config'),
        ],
        { encoding: 'utf8', timeout: 60_000 },
      )
      assert.equal(imported.status, 0, imported.stderr)
      const r = await W.submit({
        port: h.port,
        from: W.ALICE,
        login: W.ALICE,
        to: `carol@${B_DOMAIN}`,
        message: W.mixedMessage(W.ALICE, 'rt-haraka'),
      })
      assert.match(r.dataReply, /^250 /, r.transcript)
      const got = await pfB!.waitForSink(1, 60_000, (m) => m.message.includes('Subject: rt-haraka'))
      const m = got.find((x) => x.message.includes('Subject: rt-haraka'))!
      const ar = m.headers.filter(([k]) => k.toLowerCase() === 'authentication-results').map(([, v]) => v)
      assert.ok(
        ar.some((v) => /^mx\.b\.test;.*x-openpgp=pass/s.test(v)),
        `${ar.join(' | ')}\n${h.log().slice(-2000)}`,
      )
    } finally {
      await h.stop()
    }
  })

  it('the other order, OpenDKIM before linksec: the DKIM signature fails at B (why the example puts linksec first)', async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: reversedPort,
      from: W.ALICE,
      login: W.ALICE,
      to: `carol@${B_DOMAIN}`,
      message: W.plainMessage(W.ALICE, 'rt-reversed'),
    })
    assert.match(r.dataReply, /^250 /, r.transcript)
    const got = await pfB!.waitForSink(1, 60_000, (m) => m.message.includes('Subject: rt-reversed'))
    const m = got.find((x) => x.message.includes('Subject: rt-reversed'))!
    const ar = m.headers.filter(([k]) => k.toLowerCase() === 'authentication-results').map(([, v]) => v)
    assert.ok(
      ar.some((v) => /x-openpgp=pass/.test(v)),
      ar.join(' | '),
    )
    assert.ok(
      ar.some((v) => /^mx\.b\.test;.*dkim=fail/s.test(v)),
      ar.join(' | '),
    )
  })

  it("a message claiming alice's From without A's signature, sent to B directly, is refused 550 5.7.x", async (t) => {
    if (!skipUnlessReady(t)) return
    const r = await W.submit({
      port: pfB!.port,
      from: W.ALICE,
      to: `carol@${B_DOMAIN}`,
      message: W.plainMessage(W.ALICE, 'rt-forged'),
    })
    assert.match(r.dataReply, /^550 5\.7\.\d+ .*sign\.test.*sig=required/i, r.transcript)
  })
})
