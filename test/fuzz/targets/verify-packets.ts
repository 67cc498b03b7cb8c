/**
 * Armor and signature packets from strangers: dearmor and readSignatures
 * either return packets or throw PacketError, nothing else.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { dearmor, PacketError, readSignatures } from '../../../core/verify/packets'
import type { FuzzTarget } from '../run'

const FIXTURES = path.resolve(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'verify')

function armoredSeed(): Buffer {
  const eml = fs.readFileSync(path.join(FIXTURES, 'pgp-mime.eml'), 'latin1')
  const m = /-----BEGIN PGP SIGNATURE-----[^]*?-----END PGP SIGNATURE-----/.exec(eml)
  return Buffer.from(m ? m[0] : '', 'latin1')
}

export const target: FuzzTarget = {
  name: 'verify-packets',
  seeds: () => {
    const armored = armoredSeed()
    return [armored, dearmor(armored.toString('latin1'))]
  },
  fuzzOne(input) {
    const text = input.toString('latin1')
    if (text.includes('-----BEGIN')) {
      try {
        readSignatures(dearmor(text))
      } catch (e) {
        if (!(e instanceof PacketError)) throw e
      }
    }
    readSignatures(input)
  },
  isExpectedError: (e) => e instanceof PacketError,
}
