/**
 * Benchmark: sender signature verifications per second, in one process, on
 * one ~2 KB PGP/MIME message signed with Ed25519, side by side in one run:
 *
 *   raw        Node `crypto.verify` Ed25519 over a 32-byte digest with a
 *              cached KeyObject: the physical limit of the math
 *   linksec    `verifyMessage` on the whole message (MIME, armor, key from
 *              the local store/cache, native check, A-R header, verdict)
 *   check      `checkSignatures` only (signed bytes + signature packets)
 *   openpgp.js `openpgp.verify()` with a parsed key object (its default path)
 *   gpgv       one `gpgv` process per message (what a shell-out costs)
 *
 * Goals (issue 5): linksec >= 50 % of raw, >= 20x gpgv.
 *
 *   node dist/bench/verify.js [--quick]
 */
import { spawnSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as openpgp from 'openpgp'
import { parseConfig } from '../core/config'
import { keyStoreFor } from '../core/keys'
import { silentLogger } from '../core/log'
import { createMetrics } from '../core/metrics'
import { createRuntime, type Runtime } from '../core/runtime'
import { verifyMessage } from '../core/verify'
import { checkSignatures } from '../core/verify/check'
import { dearmor, readSignatures } from '../core/verify/packets'
import { interleaved, type Op, type Rate } from './lib/interleave'
import { runStandalone } from './lib/standalone'
import { ratio, round, rotate, spread, formatSpread } from './lib/stats'
import { atLeast, type BenchOptions, type BenchResult } from './lib/types'

interface Fixture {
  dir: string
  rt: Runtime
  message: Buffer
  inner: Buffer
  armoredSig: string
  key: openpgp.PublicKey
  keyFile: string
}

async function fixture(): Promise<Fixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-bench-verify-'))
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: 'Alice', email: 'alice@example.org' }],
    format: 'object',
  })
  const lines = Array.from(
    { length: 22 },
    (_, i) => `Line ${i + 1} of the benchmark message, signed by its author.`,
  )
  const inner = Buffer.from(`Content-Type: text/plain; charset=utf-8\r\n\r\n${lines.join('\r\n')}\r\n`)
  const msg = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const armoredSig = (await openpgp.sign({ message: msg, signingKeys: privateKey, detached: true })) as string
  const b = 'bench-boundary'
  const message = Buffer.concat([
    Buffer.from(
      `From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: bench\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; micalg=pgp-sha512; protocol="application/pgp-signature"; boundary="${b}"\r\n\r\n--${b}\r\n`,
    ),
    inner,
    Buffer.from(
      `\r\n--${b}\r\nContent-Type: application/pgp-signature\r\n\r\n${armoredSig.replace(/\r?\n/g, '\r\n')}\r\n--${b}--\r\n`,
    ),
  ])
  const cfg = parseConfig({ main: { authserv_id: 'mx.bench' }, keys: { methods: 'local' } }, dir)
  const rt = createRuntime(cfg, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
  await keyStoreFor(rt).add(Buffer.from(publicKey.write()))
  const keyFile = path.join(dir, 'pub.gpg')
  fs.writeFileSync(keyFile, publicKey.write())
  fs.writeFileSync(path.join(dir, 'inner'), inner)
  fs.writeFileSync(path.join(dir, 'inner.asc'), armoredSig)
  return { dir, rt, message, inner, armoredSig, key: publicKey, keyFile }
}

function rawEd25519(): Op {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519')
  const digest = crypto.randomBytes(32)
  const sig = crypto.sign(null, digest, privateKey)
  return () => {
    if (!crypto.verify(null, digest, publicKey, sig)) throw new Error('raw verify failed')
  }
}

function linksecOp(f: Fixture): Op {
  return async () => {
    const d = await verifyMessage(f.rt, f.message, { signaturePolicy: async () => 'optional' })
    if (d.result !== 'pass') throw new Error(`linksec: ${d.result} ${d.facts.reason}`)
  }
}

async function checkOp(f: Fixture): Promise<Op> {
  const ring = (await keyStoreFor(f.rt).lookup('alice@example.org'))!
  return async () => {
    const sigs = readSignatures(dearmor(f.armoredSig))
    const c = await checkSignatures(f.inner, sigs, ring, Date.now())
    if (c.result !== 'pass') throw new Error(`check: ${c.reason}`)
  }
}

function openpgpOp(f: Fixture): Op {
  return async () => {
    const message = await openpgp.createMessage({ binary: new Uint8Array(f.inner) })
    const signature = await openpgp.readSignature({ armoredSignature: f.armoredSig })
    const r = await openpgp.verify({ message, signature, verificationKeys: f.key, expectSigned: true })
    await r.signatures[0]!.verified
  }
}

function gpgvOp(f: Fixture): Op | undefined {
  const args = ['--keyring', f.keyFile, path.join(f.dir, 'inner.asc'), path.join(f.dir, 'inner')]
  const probe = spawnSync('gpgv', args, { stdio: 'ignore' })
  if (probe.error || probe.status !== 0) return undefined
  return () => {
    if (spawnSync('gpgv', args, { stdio: 'ignore' }).status !== 0) throw new Error('gpgv failed')
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const rounds = 3
  const ms = opts.quick ? 400 : 2000
  const f = await fixture()
  try {
    const gpgv = gpgvOp(f)
    const ops: [string, Op, number][] = [
      ['raw Ed25519 crypto.verify', rawEd25519(), 1e7],
      ['linksec verifyMessage', linksecOp(f), 1e7],
      ['linksec checkSignatures', await checkOp(f), 1e7],
      ['openpgp.js verify()', openpgpOp(f), 1e7],
      ...(gpgv ? [['gpgv process', gpgv, opts.quick ? 100 : 600] as [string, Op, number]] : []),
    ]
    for (const [, op] of ops) for (let i = 0; i < 200 && op !== gpgv; i++) await op() // warm-up
    const rates = new Map<string, Rate[]>(ops.map(([n]) => [n, []]))
    for (let r = 0; r < rounds; r++) {
      opts.progress(r / rounds, `round ${r + 1} of ${rounds}`)
      for (const [name, v] of await interleaved(rotate(ops, r), ms)) rates.get(name)!.push(v)
    }
    return result(rates, f.message.length, Boolean(gpgv))
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
}

function result(rates: Map<string, Rate[]>, bytes: number, haveGpgv: boolean): BenchResult {
  const wall = (n: string) => spread((rates.get(n) ?? []).map((r) => r.perSecond)).median
  const cpu = (n: string) => spread((rates.get(n) ?? []).map((r) => r.perCpuSecond)).median
  const RAW = 'raw Ed25519 crypto.verify'
  const rows = [...rates].map(([name, v]) => ({
    method: name,
    'verifications/s': formatSpread(spread(v.map((r) => r.perSecond))),
    'µs each': round(1e6 / wall(name)),
    'CPU µs each': name === 'gpgv process' ? 'n/a' : round(1e6 / cpu(name)),
    'vs raw (CPU)': name === 'gpgv process' ? 'n/a' : round(ratio(cpu(name), cpu(RAW))),
  }))
  const linksec = 'linksec verifyMessage'
  const ratios: Record<string, number> = {
    'linksec/raw': round(ratio(cpu(linksec), cpu(RAW))),
    'linksec/raw (wall, one at a time)': round(ratio(wall(linksec), wall(RAW))),
    'check/raw': round(ratio(cpu('linksec checkSignatures'), cpu(RAW))),
    'openpgp.js/raw': round(ratio(cpu('openpgp.js verify()'), cpu(RAW))),
  }
  const goals: BenchResult['goals'] = { 'linksec/raw': atLeast(ratio(cpu(linksec), cpu(RAW)), 0.5) }
  if (haveGpgv) {
    ratios['linksec/gpgv'] = round(ratio(wall(linksec), wall('gpgv process')))
    goals['linksec/gpgv'] = atLeast(ratio(wall(linksec), wall('gpgv process')), 20)
  }
  const notes = [
    `one ${bytes}-byte PGP/MIME message (Ed25519 legacy EdDSA, SHA-512), key in the local store; median of 3 rounds (min-max), each round 50 ms slices of every method in turn, order rotated per round, one verification at a time`,
    'raw = crypto.verify(null, 32-byte digest, cached KeyObject, sig): the Ed25519 math alone, on the main thread',
    'the goal ratio compares CPU per verification (all threads, process.cpuUsage), so work moved to a thread pool would still count; the wall-time ratio, one verification at a time, is shown beside it; gpgv (a child process) is compared by wall time',
  ]
  if (!haveGpgv) notes.push('gpgv not found: the gpgv row and ratio are missing (apt-get install gpgv)')
  return { name: 'verify', rows, ratios, goals, notes }
}

if (require.main === module) runStandalone('verify', run)
