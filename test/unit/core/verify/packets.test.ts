import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as openpgp from 'openpgp'
import { dearmor, PacketError, readPackets, readSignatures } from '../../../../core/verify/packets'

async function sample(): Promise<{ armored: string; fingerprint: string }> {
  const { privateKey } = await openpgp.generateKey({
    userIDs: [{ email: 'a@example.org' }],
    format: 'object',
  })
  const message = await openpgp.createMessage({ binary: Buffer.from('data') })
  const armored = (await openpgp.sign({ message, signingKeys: privateKey, detached: true })) as string
  return { armored, fingerprint: privateKey.getFingerprint().toUpperCase() }
}

test('dearmor + readSignatures: type, algorithms, times and issuer of an openpgp.js signature', async () => {
  const { armored, fingerprint } = await sample()
  const [sig, more] = readSignatures(dearmor(armored))
  assert.equal(more, undefined)
  assert.equal(sig!.version, 4)
  assert.equal(sig!.sigType, 0)
  assert.equal(sig!.pubAlgo, 22)
  assert.equal(sig!.hashAlgo, 10)
  assert.equal(sig!.issuerFingerprint, fingerprint)
  assert.equal(sig!.issuerKeyId, fingerprint.slice(-16))
  assert.ok(Math.abs(sig!.created! - Date.now() / 1000) < 60)
})

test('armor: headers, CRC line and missing END are handled', async () => {
  const { armored } = await sample()
  const withHeader = armored.replace(
    '-----BEGIN PGP SIGNATURE-----\n',
    '-----BEGIN PGP SIGNATURE-----\nComment: x\n',
  )
  assert.deepEqual(dearmor(withHeader), dearmor(armored))
  assert.throws(() => dearmor(armored.replace(/-----END[^]*$/, '')), PacketError)
  assert.throws(() => dearmor('nothing here'), PacketError)
  assert.throws(() => dearmor(armored.replace(/\n([A-Za-z0-9+/]{10})/, '\n$1!!')), PacketError)
})

test('truncated packets and partial lengths are malformed, not crashes', async () => {
  const bin = dearmor((await sample()).armored)
  for (let n = 0; n < bin.length; n++) {
    try {
      readSignatures(bin.subarray(0, n))
    } catch (e) {
      assert.ok(e instanceof PacketError, `cut at ${n}: ${String(e)}`)
    }
  }
  assert.throws(() => readPackets(Buffer.from([0xc2, 0xe1, 0x00])), /partial/)
  assert.throws(() => readPackets(Buffer.from([0x02])), /not an OpenPGP packet/)
})

test('v3 signatures are unsupported (neutral), not malformed', () => {
  const v3 = Buffer.from([0xc2, 8, 3, 5, 0, 0, 0, 0, 0, 0])
  assert.throws(
    () => readSignatures(v3),
    (e: unknown) => e instanceof PacketError && e.unsupported,
  )
})
