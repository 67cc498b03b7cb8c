/**
 * How fast the host is right now, in one number: the median time of one
 * Ed25519 verification (node:crypto, cached key), taken just before and
 * just after each benchmark. On a shared VM a busy host slows every process
 * alike; this number says when that happened, so a reader can tell a slow
 * run from a slow linksec (bench/README.md: 120 µs on our quiet VM, 145–153
 * on a busy one).
 */
import * as crypto from 'node:crypto'

const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519')
const DIGEST = crypto.randomBytes(32)
const SIGNATURE = crypto.sign(null, DIGEST, privateKey)

/** Median µs of one verification over `rounds` rounds of `ops` verifications (~0.2 s in all). */
export function ed25519Micros(rounds = 5, ops = 300): number {
  const perOp: number[] = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < ops; i++) crypto.verify(null, DIGEST, publicKey, SIGNATURE)
    perOp.push(Number(process.hrtime.bigint() - t0) / 1000 / ops)
  }
  perOp.sort((a, b) => a - b)
  return Math.round(perOp[perOp.length >> 1]! * 10) / 10
}

export function hostNote(before: number, after: number): string {
  return `host check: one Ed25519 verification took ${before} µs before and ${after} µs after this benchmark; a higher figure than on a quiet run means a busy host, which inflates CPU per message and flatters end-to-end ratios`
}
