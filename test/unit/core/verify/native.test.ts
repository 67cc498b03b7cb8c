/**
 * The native path must agree with openpgp.js on the same inputs, good and
 * bad: Ed25519 (legacy EdDSA 22 and RFC 9580 type 27 in v4 and v6 keys) and
 * RSA, binary and text signatures, altered data, altered signatures and the
 * wrong key.
 */
import assert from 'node:assert/strict'
import * as crypto from 'node:crypto'
import { before, test } from 'node:test'
import * as openpgp from 'openpgp'
import { nativeKeyFromPacket, type NativeKey } from '../../../../core/keys/native-key'
import { rsaSignatureMatches, verifyNative } from '../../../../core/verify/native'
import { dearmor, readSignatures } from '../../../../core/verify/packets'

interface Kind {
  name: string
  gen: Pick<openpgp.SubkeyOptions, 'type' | 'curve' | 'rsaBits' | 'config'>
  config?: Partial<openpgp.Config>
}

const KINDS: Kind[] = [
  { name: 'ed25519 legacy (22), v4', gen: { type: 'ecc', curve: 'ed25519Legacy' } },
  { name: 'ed25519 (27), v4', gen: { type: 'curve25519' } },
  {
    name: 'ed25519 (27), v6 key + v6 sig',
    gen: { type: 'curve25519', config: { v6Keys: true } },
    config: { v6Keys: true },
  },
  { name: 'rsa 2048 (1)', gen: { type: 'rsa', rsaBits: 2048 } },
]

interface Made {
  kind: Kind
  key: openpgp.PrivateKey
  native: NativeKey
}

const made: Made[] = []
let stranger: openpgp.PrivateKey

before(async () => {
  for (const kind of KINDS) {
    const { privateKey: key } = await openpgp.generateKey({
      ...kind.gen,
      userIDs: [{ email: 'a@example.org' }],
      format: 'object',
    })
    const signing = await key.getSigningKey()
    const native = nativeKeyFromPacket(signing.keyPacket.write())
    assert.ok(native, `${kind.name}: native key`)
    made.push({ kind, key, native: native })
  }
  stranger = (await openpgp.generateKey({ userIDs: [{ email: 'b@example.org' }], format: 'object' }))
    .privateKey
})

async function sign(m: Made, data: Buffer, text: boolean): Promise<Buffer> {
  const message = text
    ? await openpgp.createMessage({ text: data.toString('utf8') })
    : await openpgp.createMessage({ binary: new Uint8Array(data) })
  const armored = (await openpgp.sign({
    message,
    signingKeys: m.key,
    detached: true,
    config: m.kind.config,
  })) as string
  return dearmor(armored)
}

async function openpgpSays(
  m: Made,
  data: Buffer,
  sig: Buffer,
  text: boolean,
  key = m.key.toPublic(),
): Promise<boolean> {
  try {
    const message = text
      ? await openpgp.createMessage({ text: data.toString('utf8') })
      : await openpgp.createMessage({ binary: new Uint8Array(data) })
    const signature = await openpgp.readSignature({ binarySignature: new Uint8Array(sig) })
    const r = await openpgp.verify({ message, signature, verificationKeys: key, config: m.kind.config })
    return await r.signatures[0]!.verified
  } catch {
    return false
  }
}

function nativeSays(sig: Buffer, data: Buffer, key: NativeKey): boolean {
  try {
    return verifyNative(readSignatures(sig)[0]!, data, key) === 'valid'
  } catch {
    return false
  }
}

/** openpgp.js hashes text signatures over CRLF line ends; the verifier is handed canonical data. */
const canonical = (data: Buffer, text: boolean) =>
  text ? Buffer.from(data.toString('utf8').replace(/\r?\n/g, '\r\n')) : data

for (const text of [false, true]) {
  test(`native == openpgp.js on good and altered ${text ? 'text' : 'binary'} signatures`, async () => {
    for (const m of made) {
      for (let round = 0; round < 4; round++) {
        const data = Buffer.from(
          crypto
            .randomBytes(200 + round * 700)
            .toString('base64')
            .replace(/(.{60})/g, '$1\n'),
        )
        const sig = await sign(m, data, text)
        const cases: [string, Buffer, Buffer][] = [
          ['good', data, sig],
          ['data altered', Buffer.concat([data, Buffer.from('x')]), sig],
          ['one data bit', flip(data, round * 13), sig],
          ['signature tail bit', data, flip(sig, sig.length - 1 - round)],
        ]
        for (const [what, d, s] of cases) {
          const expected = await openpgpSays(m, d, s, text)
          assert.equal(nativeSays(s, canonical(d, text), m.native), expected, `${m.kind.name} ${what}`)
          if (what === 'good')
            assert.equal(expected, true, `${m.kind.name}: openpgp.js accepts its own signature`)
        }
      }
    }
  })
}

test('a signature does not verify under another key (native and openpgp.js)', async () => {
  const other = nativeKeyFromPacket((await stranger.getSigningKey()).keyPacket.write())!
  for (const m of made.filter((x) => x.native.algo === other.algo)) {
    const data = Buffer.from('hello')
    const sig = await sign(m, data, false)
    assert.equal(await openpgpSays(m, data, sig, false, stranger.toPublic()), false)
    assert.equal(nativeSays(sig, data, other), false)
  }
})

test('unsupported algorithms are reported, not guessed', async () => {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'nistP256',
    userIDs: [{ email: 'p@example.org' }],
    format: 'object',
  })
  assert.equal(nativeKeyFromPacket(privateKey.keyPacket.write()), undefined)
})

function flip(b: Buffer, at: number): Buffer {
  const c = Buffer.from(b)
  const i = at % c.length
  c[i] = (c[i] ?? 0) ^ 0x01
  return c
}

test('RSA by recovery agrees with node:crypto for every hash it names', () => {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
  const data = Buffer.from('the octets a signature hashes')
  for (const hash of ['sha1', 'sha224', 'sha256', 'sha384', 'sha512', 'sha3-256', 'sha3-512']) {
    const signature = crypto.sign(hash, data, privateKey)
    const digest = crypto.createHash(hash).update(data).digest()
    assert.equal(rsaSignatureMatches(publicKey, signature, hash, digest), true, `${hash}: good`)
    assert.equal(
      rsaSignatureMatches(publicKey, signature, hash, flip(digest, 3)),
      false,
      `${hash}: other digest`,
    )
    assert.equal(
      rsaSignatureMatches(publicKey, flip(signature, 100), hash, digest),
      false,
      `${hash}: altered`,
    )
    const other = hash === 'sha256' ? 'sha3-256' : 'sha256'
    const otherDigest = crypto.createHash(other).update(data).digest()
    assert.equal(rsaSignatureMatches(publicKey, signature, other, otherDigest), false, `${hash} as ${other}`)
  }
})
