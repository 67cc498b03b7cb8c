/**
 * What linksec signs, checked by independent verifiers: keys made by
 * `linksec keys generate` (Ed25519, RSA-3072) and one imported from GnuPG
 * (`linksec keys import-secret`), messages of every shape the issue names
 * (plain, quoted-printable, 8-bit, binary attachment, bare LF, gpg
 * sign+encrypt), each signed output verified by gpg, sq and rnp on the
 * detached parts and by linksec's own verifier; decoded parts equal the
 * originals; mail linksec signed before is left alone. No network: every
 * verifier gets the certificate from a file.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../../core/config'
import { keyStoreFor } from '../../core/keys'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime, type Runtime } from '../../core/runtime'
import { signMessage } from '../../core/sign'
import { applySigned } from '../../core/sign/apply'
import { secretStoreFor } from '../../core/sign/step'
import { verifyMessage } from '../../core/verify'
import { decodeTransfer, headerValue, parseContentType, parseEntity, splitMultipart } from '../../core/mime'
import * as S from '../helpers/signers'
import { needTools } from '../helpers/tools'
import { detachedParts, verifyWith, type Verifier } from '../helpers/verifiers'

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')
const TOOLS = { gpg: 'gnupg', sq: 'sq', rnp: 'rnp' }
const VERIFIERS: Verifier[] = ['gpg', 'sq', 'rnp']

function linksec(...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, out: r.stdout, err: r.stderr }
}

const crlf = (s: string) => s.replace(/\r?\n/g, '\r\n')
const head = (from: string) =>
  crlf(
    `From: <${from}>\nTo: bob@example.net\nSubject: test\nDate: Thu, 03 Dec 2026 10:00:00 +0000\nMessage-ID: <m1@sign.test>\nMIME-Version: 1.0\n`,
  )
const BINARY = Buffer.from(
  Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff).map((v) => (v === 10 || v === 13 ? 0x20 : v)),
)
const EIGHT_BIT = Buffer.from('Grüße aus Köln  \r\nZeile mit Tab\t\r\nFrom the start\r\n', 'utf8')

function shapes(from: string): Record<string, Buffer> {
  const b = 'mix-1'
  return {
    plain: Buffer.from(`${head(from)}Content-Type: text/plain\r\n\r\nHello, plain.\r\n`),
    'quoted-printable': Buffer.from(
      `${head(from)}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe =3D fine=20\r\nsecond line\r\n`,
    ),
    '8-bit': Buffer.concat([
      Buffer.from(
        `${head(from)}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n`,
      ),
      EIGHT_BIT,
    ]),
    attachment: Buffer.concat([
      Buffer.from(
        `${head(from)}Content-Type: multipart/mixed; boundary="${b}"\r\n\r\n--${b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n`,
      ),
      EIGHT_BIT,
      Buffer.from(
        `\r\n--${b}\r\nContent-Type: application/octet-stream; name="x.bin"\r\nContent-Transfer-Encoding: binary\r\n\r\n`,
      ),
      BINARY,
      Buffer.from(`\r\n--${b}--\r\n`),
    ]),
    'bare LF and trailing blanks': Buffer.from(
      `From: <${from}>\nSubject: lf\nContent-Type: text/plain\n\nline one   \nline two\t\n`,
    ),
  }
}

describe('linksec signs, gpg, sq and rnp verify', () => {
  let kit: S.SignerKit
  let dir: string
  let rt: Runtime
  const certs: Record<string, Buffer> = {}
  let ok = true

  before(async (t) => {
    ok = needTools(t as never, TOOLS)
    if (!ok) return
    kit = new S.SignerKit()
    dir = kit.scratch('config')
    fs.writeFileSync(
      path.join(dir, 'linksec.ini'),
      '[main]\ndomain=sign.test\n[keys]\nmethods=local\n[sign]\nenabled=true\n[log]\nlevel=warn\n',
    )
    for (const [addr, extra] of [
      ['alice@sign.test', []],
      ['rsa@sign.test', ['--rsa', '3072']],
    ] as const) {
      const r = linksec('keys', 'generate', addr, ...extra, '--config', dir)
      assert.equal(r.status, 0, r.err)
      assert.match(r.out, new RegExp(`generated ${addr.replace('.', '\\.')} \\([0-9A-F]{40}\\)`))
    }
    rt = createRuntime(loadConfig(dir), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    for (const a of ['alice@sign.test', 'rsa@sign.test']) certs[a] = (await keyStoreFor(rt).lookup(a))!.binary
  })
  after(() => kit?.cleanup())

  async function sign(address: string, msg: Buffer): Promise<Buffer> {
    const key = await secretStoreFor(rt).signer(address)
    assert.ok(key, `a key for ${address}`)
    const r = signMessage(msg, key, {})
    assert.equal(r.kind, 'signed', r.kind === 'signed' ? '' : r.reason)
    return applySigned(msg, r)
  }

  async function allVerify(address: string, out: Buffer): Promise<void> {
    for (const tool of VERIFIERS) {
      const v = verifyWith(tool, kit.dir, certs[address]!, out)
      assert.ok(v.ok, `${tool} rejects it: ${v.said}`)
    }
    const d = await verifyMessage(rt, out, { signaturePolicy: async () => 'optional' })
    assert.equal(d.result, 'pass', `linksec: ${d.facts.reason}`)
  }

  for (const address of ['alice@sign.test', 'rsa@sign.test'])
    for (const name of Object.keys(shapes(address)))
      it(`${address.split('@')[0]}: ${name}`, async (t) => {
        if (!ok) return t.skip('tools missing')
        const out = await sign(address, shapes(address)[name]!)
        const { data } = detachedParts(out)
        assert.ok(
          data.every((c) => c < 0x80),
          'the signed part is 7-bit',
        )
        assert.ok(!/[ \t]\r\n/.test(data.toString('latin1')), 'no blank before a line break')
        await allVerify(address, out)
      })

  it('8-bit text and a binary attachment decode to their original octets', async (t) => {
    if (!ok) return t.skip('tools missing')
    const out = await sign('alice@sign.test', shapes('alice@sign.test').attachment!)
    const inner = parseEntity(detachedParts(out).data)
    const mp = splitMultipart(
      inner.body,
      parseContentType(headerValue(inner.headers, 'content-type')).params.boundary!,
    )
    const [text, bin] = mp.parts.map((p) => parseEntity(p))
    assert.deepEqual(
      decodeTransfer(text!.body, headerValue(text!.headers, 'content-transfer-encoding')),
      EIGHT_BIT,
    )
    assert.deepEqual(
      decodeTransfer(bin!.body, headerValue(bin!.headers, 'content-transfer-encoding')),
      BINARY,
    )
  })

  it('a gpg --sign --encrypt message is signed outside, the ciphertext unchanged, bob can still decrypt it', async (t) => {
    if (!ok) return t.skip('tools missing')
    const bobHome = kit.scratch('bob')
    const gpg = (home: string, args: string[], input?: Buffer) =>
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
        {
          env: { ...process.env, GNUPGHOME: home },
          input,
        },
      )
    gpg(bobHome, ['--quick-gen-key', 'Bob <bob@example.net>', 'ed25519', 'sign', 'never'])
    gpg(bobHome, [
      '--quick-add-key',
      gpg(bobHome, ['--list-keys', '--with-colons'])
        .toString()
        .match(/fpr:+([0-9A-F]{40})/)![1]!,
      'cv25519',
      'encr',
      'never',
    ])
    const aliceHome = kit.scratch('alice-mua')
    gpg(aliceHome, ['--quick-gen-key', 'Alice <alice@sign.test>', 'ed25519', 'sign', 'never'])
    gpg(aliceHome, ['--import'], gpg(bobHome, ['--export', 'bob@example.net']))
    const armored = gpg(
      aliceHome,
      [
        '--trust-model',
        'always',
        '--armor',
        '--sign',
        '--encrypt',
        '-r',
        'bob@example.net',
        '-u',
        'alice@sign.test',
      ],
      Buffer.from('secret text\r\n'),
    ).toString('latin1')
    const encrypted = S.encryptedPart(armored)
    const msg = Buffer.concat([Buffer.from(head('alice@sign.test')), encrypted])
    const out = await sign('alice@sign.test', msg)
    assert.equal(
      parseContentType(headerValue(parseEntity(out).headers, 'content-type')).type,
      'multipart/signed',
    )
    assert.deepEqual(detachedParts(out).data, encrypted)
    await allVerify('alice@sign.test', out)
    const inner = parseEntity(detachedParts(out).data)
    const mp = splitMultipart(
      inner.body,
      parseContentType(headerValue(inner.headers, 'content-type')).params.boundary!,
    )
    // Bob checks Alice's signature inside the ciphertext with her own key.
    gpg(bobHome, ['--import'], gpg(aliceHome, ['--export', 'alice@sign.test']))
    const plain = gpg(bobHome, ['--trust-model', 'always', '--decrypt'], parseEntity(mp.parts[1]!).body)
    assert.equal(plain.toString(), 'secret text\r\n')
    for (const h of [bobHome, aliceHome])
      spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: h } })
  })

  it('mail linksec signed before is left alone', async (t) => {
    if (!ok) return t.skip('tools missing')
    const out = await sign('alice@sign.test', shapes('alice@sign.test').plain!)
    const key = (await secretStoreFor(rt).signer('alice@sign.test'))!
    assert.equal(signMessage(out, key).kind, 'already_signed')
  })

  it('keys import-secret takes an unprotected gpg export and refuses a protected one, saying how', async (t) => {
    if (!ok) return t.skip('tools missing')
    const home = kit.scratch('carol')
    const gpg = (args: string[]) =>
      execFileSync('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
        env: { ...process.env, GNUPGHOME: home },
      })
    gpg(['--quick-gen-key', 'Carol <carol@sign.test>', 'ed25519', 'sign', 'never'])
    const fingerprint = /fpr:+([0-9A-F]{40})/.exec(gpg(['--list-keys', '--with-colons']).toString())![1]!
    const exported = gpg(['--export-secret-keys', fingerprint])
    const user = { fingerprint, publicKey: () => gpg(['--export', fingerprint]) }
    const file = path.join(kit.dir, 'carol.key')
    fs.writeFileSync(file, exported)
    const r = linksec('keys', 'import-secret', file, '--config', dir)
    assert.equal(r.status, 0, r.err)
    assert.equal(fs.statSync(path.join(dir, 'secret', 'carol@sign.test.key')).mode & 0o777, 0o600)
    assert.equal(fs.statSync(path.join(dir, 'secret')).mode & 0o777, 0o700)
    const list = linksec('keys', 'list', '--config', dir)
    assert.match(
      list.out,
      new RegExp(`^carol@sign\\.test\\t${user.fingerprint}\\tvalid\\t.*\\tsign=yes$`, 'm'),
    )
    const rt2 = createRuntime(loadConfig(dir), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    const key = (await secretStoreFor(rt2).signer('carol@sign.test'))!
    const out = applySigned(
      shapes('carol@sign.test').plain!,
      signMessage(shapes('carol@sign.test').plain!, key) as never,
    )
    for (const tool of VERIFIERS) assert.ok(verifyWith(tool, kit.dir, user.publicKey(), out).ok, tool)

    const protHome = kit.scratch('protected')
    execFileSync(
      'gpg',
      [
        '--batch',
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        'pw',
        '--quick-gen-key',
        'Dan <dan@sign.test>',
        'ed25519',
        'sign',
        'never',
      ],
      { env: { ...process.env, GNUPGHOME: protHome } },
    )
    const prot = execFileSync(
      'gpg',
      [
        '--batch',
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        'pw',
        '--export-secret-keys',
        'dan@sign.test',
      ],
      { env: { ...process.env, GNUPGHOME: protHome } },
    )
    fs.writeFileSync(path.join(kit.dir, 'dan.key'), prot)
    const refused = linksec('keys', 'import-secret', path.join(kit.dir, 'dan.key'), '--config', dir)
    assert.equal(refused.status, 1)
    assert.match(refused.err, /protected by a passphrase.*--passwd.*--export-secret-keys/s)
    assert.ok(!fs.existsSync(path.join(dir, 'secret', 'dan@sign.test.key')))
    for (const h of [home, protHome])
      spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: h } })
  })

  it('the generated key is sign-only and sq inspect reads it', (t) => {
    if (!ok) return t.skip('tools missing')
    const f = path.join(kit.dir, 'alice-cert.pgp')
    fs.writeFileSync(f, certs['alice@sign.test']!)
    const out = execFileSync('sq', ['inspect', f]).toString()
    assert.match(out, /EdDSA/)
    assert.match(out, /<?alice@sign\.test>?/)
    assert.doesNotMatch(out, /encryption/i)
  })

  it('record --sig=required says why not, then prints it once every sender signs', (t) => {
    if (!ok) return t.skip('tools missing')
    // carol@ is published and held; dan@ gets only a published key (he signs his own mail).
    const dan = kit.gpg({ address: 'dan@sign.test' })
    const danFile = path.join(kit.dir, 'dan.pgp')
    fs.writeFileSync(danFile, dan.publicKey())
    assert.equal(linksec('keys', 'add', danFile, '--config', dir).status, 0)
    const no = linksec('record', 'sign.test', '--sig=required', '--config', dir)
    assert.equal(no.status, 1)
    assert.match(no.err, /no secret key for dan@sign\.test/)
    assert.equal(no.out, '')
    assert.equal(linksec('keys', 'remove', 'dan@sign.test', '--config', dir).status, 0)
    const yes = linksec('record', 'sign.test', '--sig=required', '--config', dir)
    assert.equal(yes.status, 0, yes.err)
    assert.match(yes.out, /sig=required/)
    const other = linksec('record', 'elsewhere.test', '--sig=required', '--config', dir)
    assert.match(other.err, /elsewhere\.test is not signed for/)
  })

  it('start-up refuses a secret file others can read, naming it', (t) => {
    if (!ok) return t.skip('tools missing')
    const file = path.join(dir, 'secret', 'alice@sign.test.key')
    fs.chmodSync(file, 0o644)
    try {
      const r = spawnSync(process.execPath, [BIN, 'serve', '--config', dir], {
        encoding: 'utf8',
        timeout: 30_000,
      })
      assert.equal(r.status, 78)
      assert.match(
        r.stderr,
        new RegExp(`${file.replace(/[.@]/g, '\\$&')} is readable by other users.*chmod 600`),
      )
    } finally {
      fs.chmodSync(file, 0o600)
    }
  })
})
