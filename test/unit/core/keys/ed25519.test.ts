import assert from 'node:assert/strict'
import * as crypto from 'node:crypto'
import { describe, it } from 'node:test'
import {
  ed25519Backend,
  ed25519Sign,
  ed25519Verify,
  type Ed25519PublicKey,
} from '../../../../core/keys/ed25519'

function keyPair(): { key: Ed25519PublicKey; privateKey: crypto.KeyObject } {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519')
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')
  return { key: { raw, keyObject: publicKey }, privateKey }
}

/** The group order L (RFC 8032 §5.1), little-endian as S is encoded. */
const L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex')

function addL(s: Buffer): Buffer {
  const out = Buffer.alloc(32)
  let carry = 0
  for (let i = 0; i < 32; i++) {
    const v = s[i]! + L[i]! + carry
    out[i] = v & 0xff
    carry = v >> 8
  }
  return out
}

describe('Ed25519 checks (core/keys/ed25519.ts)', () => {
  it('use libsodium here (sodium-native is a dependency with a linux-x64 addon)', () => {
    assert.equal(ed25519Backend(), 'libsodium')
  })

  it('agree with node:crypto on valid, altered and foreign signatures', () => {
    for (let i = 0; i < 200; i++) {
      const { key, privateKey } = keyPair()
      const message = crypto.randomBytes(i % 70)
      const sig = crypto.sign(null, message, privateKey)
      const cases: [Buffer, Buffer, boolean][] = [[message, sig, true]]
      const flipped = Buffer.from(sig)
      flipped[i % 64]! ^= 1 << (i % 8)
      cases.push([message, flipped, false])
      if (message.length) {
        const other = Buffer.from(message)
        other[0]! ^= 0x80
        cases.push([other, sig, false])
      }
      cases.push([message, crypto.sign(null, message, keyPair().privateKey), false])
      for (const [m, s, expected] of cases) {
        assert.equal(crypto.verify(null, m, key.keyObject, s), expected, 'node:crypto')
        assert.equal(ed25519Verify(key, m, s), expected, `libsodium, case ${i}`)
      }
    }
  })

  it('refuse a malleated signature (S + L), a wrong length and a short key, as node:crypto does', () => {
    const { key, privateKey } = keyPair()
    const message = Buffer.from('hello')
    const sig = crypto.sign(null, message, privateKey)
    const malleated = Buffer.concat([sig.subarray(0, 32), addL(sig.subarray(32))])
    assert.equal(crypto.verify(null, message, key.keyObject, malleated), false)
    assert.equal(ed25519Verify(key, message, malleated), false)
    assert.equal(ed25519Verify(key, message, sig.subarray(0, 63)), false)
    assert.equal(ed25519Verify({ ...key, raw: key.raw.subarray(0, 31) }, message, sig), false)
  })

  it('sign exactly as node:crypto does (RFC 8032 signatures are deterministic), with either key form', () => {
    for (let i = 0; i < 50; i++) {
      const { key, privateKey } = keyPair()
      const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url')
      const message = crypto.randomBytes(32 + i)
      const expected = crypto.sign(null, message, privateKey)
      assert.deepEqual(
        ed25519Sign({ ed25519Secret: Buffer.concat([seed, key.raw]), privateKey }, message),
        expected,
      )
      assert.deepEqual(ed25519Sign({ privateKey }, message), expected, 'without the raw secret: node:crypto')
    }
  })
})
