/**
 * The native checker against the references on the same inputs: detached
 * signatures by real gpg and sq keys over random data, good and bad
 * (altered data, flipped signature bits, truncated signatures, another
 * key's signature). `checkSignatures` must agree with openpgp.js `verify`
 * and with `gpgv`. Key validity differs on purpose: openpgp.js and gpgv
 * accept a signature made while the key was valid, linksec judges the key
 * as it is when the mail arrives (docs/architecture.md §6.4: expired keys fail); gpgv
 * ignores revocations altogether.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, test } from 'node:test'
import * as openpgp from 'openpgp'
import { readKeyBlob, ringFor } from '../../core/keys/material'
import { checkSignatures, parseSignatureBlock } from '../../core/verify/check'
import { dearmor } from '../../core/verify/packets'
import * as S from '../helpers/signers'

let kit: S.SignerKit
let signers: S.TestSigner[] = []
let mallory: S.TestSigner

async function ours(s: S.TestSigner, data: Buffer, armored: string): Promise<boolean> {
  let bin: Buffer
  try {
    bin = dearmor(armored)
  } catch {
    return false
  }
  const sigs = parseSignatureBlock(bin)
  if (!Array.isArray(sigs)) return false
  const ring = ringFor(s.address, await readKeyBlob(s.publicKey()))
  return (await checkSignatures(data, sigs, ring, Date.now())).result === 'pass'
}

async function openpgpJs(s: S.TestSigner, data: Buffer, armored: string): Promise<boolean> {
  try {
    const key = await openpgp.readKey({ binaryKey: new Uint8Array(s.publicKey()) })
    const message = await openpgp.createMessage({ binary: new Uint8Array(data) })
    const signature = await openpgp.readSignature({ armoredSignature: armored })
    const r = await openpgp.verify({ message, signature, verificationKeys: key.toPublic() })
    return await r.signatures[0]!.verified
  } catch {
    return false
  }
}

function gpgv(s: S.TestSigner, data: Buffer, armored: string): boolean {
  const dir = kit.scratch('gpgv')
  const ring = path.join(dir, 'ring.gpg')
  fs.writeFileSync(ring, s.publicKey())
  fs.writeFileSync(path.join(dir, 'data'), data)
  fs.writeFileSync(path.join(dir, 'data.asc'), armored)
  const r = spawnSync('gpgv', ['--keyring', ring, path.join(dir, 'data.asc'), path.join(dir, 'data')], {
    stdio: 'ignore',
  })
  return r.status === 0
}

describe('native checks agree with openpgp.js and gpgv', { skip: S.missingSigners() }, () => {
  before(() => {
    kit = new S.SignerKit()
    signers = [
      kit.gpg({ address: 'ed@example.org' }),
      kit.gpg({ address: 'rsa@example.org', algo: 'rsa2048' }),
      kit.gpg({ address: 'sub@example.org', subkey: true }),
      kit.sq({ address: 'sq@example.org' }),
      kit.sq({ address: 'sqrsa@example.org', suite: 'rsa3k' }),
    ]
    mallory = kit.gpg({ address: 'mallory@example.org' })
  })
  after(() => kit?.cleanup())

  test('good, altered, bit-flipped, truncated and foreign signatures', async () => {
    let compared = 0
    for (const s of signers) {
      const data = Buffer.from(crypto.randomBytes(1500).toString('base64'))
      const sig = s.detachSign(data)
      const b64 = sig.split(/\r?\n/).filter((l) => /^[A-Za-z0-9+/]{20,}$/.test(l))
      const cases: [string, Buffer, string, boolean][] = [
        ['good', data, sig, true],
        ['data altered', Buffer.concat([data, Buffer.from('!')]), sig, false],
        [
          'one byte changed',
          Buffer.from(data.toString().replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))),
          sig,
          false,
        ],
        ['signature bits flipped', data, sig.replace(b64.at(-1)!, flipB64(b64.at(-1)!)), false],
        ['signature truncated', data, sig.replace(b64.at(-1)!, ''), false],
        ['another key', data, mallory.detachSign(data), false],
      ]
      for (const [what, d, sg, expected] of cases) {
        const mine = await ours(s, d, sg)
        assert.equal(mine, expected, `${s.tool} ${s.address}: ${what}`)
        assert.equal(await openpgpJs(s, d, sg), mine, `openpgp.js disagrees: ${s.tool} ${s.address} ${what}`)
        assert.equal(gpgv(s, d, sg), mine, `gpgv disagrees: ${s.tool} ${s.address} ${what}`)
        compared++
      }
    }
    assert.equal(compared, signers.length * 6)
  })

  test('hard-revoked keys: rejected by linksec and openpgp.js; expired keys: by linksec only', async () => {
    const data = Buffer.from('hello')
    const revoked = [kit.sq({ address: 'gone@example.org' }), kit.gpg({ address: 'gone2@example.org' })]
    const sigs = revoked.map((s) => s.detachSign(data))
    revoked.forEach((s) => s.revoke())
    for (const [i, s] of revoked.entries()) {
      assert.equal(await ours(s, data, sigs[i]!), false, `${s.tool} revoked`)
      assert.equal(await openpgpJs(s, data, sigs[i]!), false, `openpgp.js, ${s.tool} revoked`)
      // gpgv trusts every key in its keyring: it checks the math only, never revocations.
      assert.equal(gpgv(s, data, sigs[i]!), true, `gpgv, ${s.tool} revoked`)
    }
    const expired = kit.gpg({ address: 'old@example.org', expired: true })
    const old = expired.detachSign(data)
    assert.equal(await ours(expired, data, old), false)
    // The references judge the key at signing time (2020, when it was valid).
    assert.equal(await openpgpJs(expired, data, old), true)
    assert.equal(gpgv(expired, data, old), true)
  })
})

function flipB64(line: string): string {
  const i = Math.floor(line.length / 2)
  return line.slice(0, i) + (line[i] === 'A' ? 'B' : 'A') + line.slice(i + 1)
}
