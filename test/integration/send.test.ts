/**
 * `linksec send` against real Haraka receivers on loopback
 * (test/helpers/receivers.ts), the MX and its address from the test DNS
 * server only (test/helpers/world.ts), the recipient's key over WKD from the
 * world's HTTPS server: a signed message verified at the sink by gpg and by
 * linksec's verifier; with --encrypt one that only the recipient's gpg
 * decrypts, its Subject inside only; a tagged message to a receiver without
 * STARTTLS is not sent (69, the hop named) and reaches nobody; the relay
 * takes what the MX cannot; bad flags are 64 naming the flag.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../../core/config'
import { parseAddress, wkdHash } from '../../core/keys'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { verifyMessage } from '../../core/verify'
import { freePort } from '../helpers/ports'
import { startReceivers, stopReceivers, type Receiver, type ReceiverKind } from '../helpers/receivers'
import * as S from '../helpers/signers'
import { verifyWith } from '../helpers/verifiers'
import { startWorld, type World } from '../helpers/world'

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')

function send(args: string[], stdin: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'send', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => resolve({ code, out, err }))
    child.stdin.end(stdin)
  })
}

const gpg = (home: string, args: string[], input?: Buffer) =>
  execFileSync(
    'gpg',
    ['--batch', '--yes', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '', ...args],
    {
      env: { ...process.env, GNUPGHOME: home },
      input,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  )

describe('linksec send', { skip: S.missingSigners(['gpg']) }, () => {
  let kit: S.SignerKit
  let world: World
  let rx: Record<ReceiverKind, Receiver> | undefined
  let bobHome: string
  let base: Record<string, Record<string, string | number | boolean>>

  let n = 0
  /** A message with a Message-ID of its own, so a test finds its copy at the sink. */
  const message = (extra = '') =>
    `From: Alice <alice@sender.test>\r\nTo: bob@tls.test\r\nSubject: Quarterly statement\r\nMessage-ID: <m${++n}@sender.test>\r\n${extra}\r\nYour balance is 42.\r\n`
  const arrived = async (r: Receiver, id: number) => {
    for (let i = 0; i < 100; i++) {
      const m = r.got().find((q) => q.raw.includes(`<m${id}@sender.test>`))
      if (m) return m
      await new Promise((ok) => setTimeout(ok, 100))
    }
    throw new Error(`message m${id} did not arrive at ${r.domain}`)
  }

  before(async () => {
    kit = new S.SignerKit()
    bobHome = kit.scratch('bob')
    gpg(bobHome, ['--quick-gen-key', 'Bob <bob@tls.test>', 'future-default', 'default', 'never'])
    const bobKey = gpg(bobHome, ['--export', 'bob@tls.test'])
    rx = await startReceivers(['tls', 'plain', 'level4'])
    world = await startWorld({
      zone: {
        'tls.test': { MX: ['10 mx.tls.test'] },
        'mx.tls.test': { A: ['127.0.0.1'] },
        'plain.test': { MX: ['10 mx.plain.test'] },
        'mx.plain.test': { A: ['127.0.0.1'] },
        'level4.test': { MX: ['10 mx.level4.test'] },
        'mx.level4.test': { A: ['127.0.0.1'] },
      },
      hosts: ['openpgpkey.tls.test'],
      routes: {
        [`openpgpkey.tls.test/.well-known/openpgpkey/tls.test/hu/${wkdHash(parseAddress('bob@tls.test')!.local)}`]:
          { body: bobKey },
      },
    })
    base = { log: { level: 'warn' }, keys: { methods: 'wkd' }, policy: { dane: false } }
  })
  after(async () => {
    await stopReceivers(rx)
    await world?.close()
    kit?.cleanup()
  })

  /** A config directory sending to `port`, with alice's secret key made by `linksec keys generate`. */
  const configFor = (send: Record<string, string | number>) => {
    const dir = world.configIni({ ...base, send })
    const r = execFileSync(
      process.execPath,
      [BIN, 'keys', 'generate', 'alice@sender.test', '--config', dir],
      {
        encoding: 'utf8',
      },
    )
    assert.match(r, /alice@sender\.test/)
    return dir
  }
  const alicePublic = (dir: string) => fs.readFileSync(path.join(dir, 'keys', 'alice@sender.test.pgp'))

  it('signs with the sender key and delivers over STARTTLS to the MX the test DNS names; gpg and linksec verify it', async () => {
    const dir = configFor({ port: rx!.tls.haraka.port })
    const r = await send(['-i', '-f', 'alice@sender.test', '--config', dir, '--', 'bob@tls.test'], message())
    assert.equal(r.code, 0, r.err)
    assert.match(
      r.out,
      new RegExp(
        `^bob@tls\\.test: sent to mx\\.tls\\.test \\[127\\.0\\.0\\.1\\]:${rx!.tls.haraka.port} over TLSv1\\.[23] \\(signed\\): 250`,
        'm',
      ),
    )
    const got = await arrived(rx!.tls, n)
    assert.deepEqual(got.rcptTo, ['bob@tls.test'])
    const raw = Buffer.from(got.raw, 'latin1')
    assert.match(got.raw, /^Content-Type: multipart\/signed; micalg=pgp-sha\d+;/im)
    const g = verifyWith('gpg', kit.scratch('verify'), alicePublic(dir), raw)
    assert.ok(g.ok, g.said)
    const rt = createRuntime(
      loadConfig(world.configIni({ keys: { methods: 'local', dir: path.join(dir, 'keys') } })),
      {
        log: silentLogger,
        metrics: createMetrics({ processMetrics: false }),
      },
    )
    const d = await verifyMessage(rt, raw, { signaturePolicy: async () => 'optional' })
    assert.equal(d.result, 'pass', d.facts.reason)
  })

  it('--encrypt: the copy at the sink decrypts with the recipient gpg key, Subject only inside (hp="cipher"), signed inside', async () => {
    const dir = configFor({ port: rx!.tls.haraka.port })
    const r = await send(['-t', '--encrypt', '--config', dir], message('Bcc: carol@tls.test\r\n'))
    // carol has no key: not sent (encryption asked for), bob gets the encrypted copy.
    assert.equal(r.code, 69, r.out + r.err)
    assert.match(r.out, /^bob@tls\.test: sent to .* \(signed, encrypted\): 250/m)
    assert.match(
      r.err,
      /^carol@tls\.test: not sent: encryption was asked for and no OpenPGP key is published for carol@tls\.test$/m,
    )
    const got = await arrived(rx!.tls, n)
    assert.deepEqual(got.rcptTo, ['bob@tls.test'])
    const outer = got.raw.slice(0, got.raw.indexOf('\r\n\r\n'))
    assert.match(outer, /^Content-Type: multipart\/encrypted; protocol="application\/pgp-encrypted"/im)
    assert.doesNotMatch(outer, /^Subject:/im)
    assert.doesNotMatch(outer, /^Bcc:/im)
    assert.match(outer, /^From: Alice <alice@sender\.test>$/im)
    assert.doesNotMatch(got.raw, /Quarterly|balance/)
    const armored = /-----BEGIN PGP MESSAGE-----[\s\S]*?-----END PGP MESSAGE-----/.exec(got.raw)![0]
    const inner = gpg(bobHome, ['--decrypt'], Buffer.from(armored)).toString('latin1')
    assert.match(inner, /^Content-Type: multipart\/signed;/im)
    assert.match(inner, /^Subject: Quarterly statement\r?$/m)
    assert.match(inner, /hp="cipher"/)
    assert.match(inner, /Your balance is 42\./)
    // The signed part inside verifies with gpg against alice's published key.
    const g = verifyWith(
      'gpg',
      kit.scratch('verify-enc'),
      alicePublic(dir),
      Buffer.from(inner.replace(/\r?\n/g, '\r\n'), 'latin1'),
    )
    assert.ok(g.ok, g.said)
  })

  it('a tagged message to an MX without STARTTLS is not sent: 69, the hop named, nothing at the sink', async () => {
    const dir = configFor({ port: rx!.plain.haraka.port })
    const before = rx!.plain.got().length
    const tagged = message('Link-Security-Required: 3\r\n').replace('bob@tls.test', 'bob@plain.test')
    const r = await send(['--config', dir, 'bob@plain.test'], tagged)
    assert.equal(r.code, 69, r.out + r.err)
    assert.match(
      r.err,
      new RegExp(
        `^bob@plain\\.test: not sent: mx\\.plain\\.test \\[127\\.0\\.0\\.1\\]:${rx!.plain.haraka.port}: this message \\(Link-Security-Required: 3\\) was not sent: .*STARTTLS`,
        'm',
      ),
    )
    assert.equal(r.out, '')
    assert.equal(rx!.plain.got().length, before)
  })

  it('a tagged message to a TLS server declaring less than the tag: 69, the declaration named, nothing at the sink', async () => {
    const dir = configFor({ port: rx!.tls.haraka.port })
    const before = rx!.tls.got().length
    const r = await send(['--config', dir, 'bob@tls.test'], message('Link-Security-Required: 3\r\n'))
    assert.equal(r.code, 69, r.out + r.err)
    assert.equal(r.out, '')
    assert.match(r.err, /^bob@tls\.test: not sent: mx\.tls\.test \[127\.0\.0\.1\]:\d+: .*level/m)
    assert.equal(rx!.tls.got().length, before)
  })

  it('Link-Security-Required: 4 to a level-4 linksec Haraka with a certificate from the trusted test CA: sent', async () => {
    // Unsigned: the level-4 receiver's linksec has no DNS to fetch alice's key with (it would answer 451 4.7.5).
    const dir = world.configIni({ ...base, send: { port: rx!.level4.haraka.port } })
    const tagged = message('Link-Security-Required: 4\r\n').replace('bob@tls.test', 'bob@level4.test')
    const r = await send(['--config', dir, 'bob@level4.test'], tagged)
    assert.equal(r.code, 0, r.err)
    assert.match(
      r.out,
      /^bob@level4\.test: sent to mx\.level4\.test \[127\.0\.0\.1\]:\d+ over TLSv1\.[23] \(unsigned\): 250/m,
    )
    const got = await arrived(rx!.level4, n)
    assert.deepEqual(got.rcptTo, ['bob@level4.test'])
  })

  it('the relay takes the message when the MX is unreachable', async () => {
    const closed = await freePort()
    const dir = configFor({ port: closed, relay: `127.0.0.1:${rx!.tls.haraka.port}` })
    const r = await send(['--config', dir, 'bob@tls.test'], message())
    assert.equal(r.code, 0, r.err)
    assert.match(
      r.out,
      /^bob@tls\.test: sent through the relay \[127\.0\.0\.1\]:\d+ over TLSv1\.[23] \(signed\)/m,
    )
    assert.deepEqual((await arrived(rx!.tls, n)).rcptTo, ['bob@tls.test'])
  })

  it('usage and address errors: 64 naming the flag, 64 without recipients, 67 for an address without a domain', async () => {
    const dir = world.configIni(base)
    const bad = await send(['-X', '--config', dir, 'bob@tls.test'], message())
    assert.equal(bad.code, 64)
    assert.match(bad.err, /unknown flag -X/)
    const f = await send(['--config', dir, '-f'], message())
    assert.equal(f.code, 64)
    assert.match(f.err, /-f needs the sender's address/)
    const none = await send(['--config', dir], message())
    assert.equal(none.code, 64)
    assert.match(none.err, /no recipients/)
    const nodomain = await send(['--config', dir, 'bob'], message())
    assert.equal(nodomain.code, 67, nodomain.err)
    assert.match(nodomain.err, /^bob: not sent: "bob" has no @domain/m)
  })
})
