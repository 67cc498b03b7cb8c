/**
 * Benchmark: OpenPGP signatures made per CPU second, in one process, on one
 * ~2 KB plain-text message from alice@example.org, side by side in one run:
 *
 *   raw         Node `crypto.sign` Ed25519 over a 32-byte digest with a
 *               cached KeyObject: the physical limit of the math
 *   signStep    the pipeline's sign step (who is signed, the key from the
 *               secret store, 7-bit check, RFC 3156 body, header edits, metric)
 *   signMessage the engine alone (message and key in, edits and body out)
 *   openpgp.js  `openpgp.sign({ detached: true })` over the same entity with a
 *               parsed key object (what the engine would cost on openpgp.js)
 *
 * Goal (issue 13): signStep >= 0.5x raw (CPU per message).
 *
 *   node dist/bench/sign.js [--quick]
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as openpgp from 'openpgp'
import { parseConfig } from '../core/config'
import { silentLogger } from '../core/log'
import { createMetrics } from '../core/metrics'
import { createRuntime, type Runtime } from '../core/runtime'
import { signMessage, type SigningKey } from '../core/sign'
import { secretStoreFor, signStep } from '../core/sign/step'
import { interleaved, type Op, type Rate } from './lib/interleave'
import { runStandalone } from './lib/standalone'
import { ratio, round, rotate, spread, formatSpread } from './lib/stats'
import { atLeast, type BenchOptions, type BenchResult } from './lib/types'

interface Fixture {
  dir: string
  rt: Runtime
  message: Buffer
  key: SigningKey
  privateKey: openpgp.PrivateKey
}

async function fixture(): Promise<Fixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-bench-sign-'))
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ email: 'alice@example.org' }],
    subkeys: [],
    format: 'object',
  })
  const lines = Array.from(
    { length: 30 },
    (_, i) => `Line ${i + 1} of the benchmark message, signed by its domain.`,
  )
  const message = Buffer.from(
    'From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: bench\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n' +
      `Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${lines.join('\r\n')}\r\n`,
  )
  const cfg = parseConfig({ main: { domain: 'example.org' }, sign: { enabled: 'true' } }, dir)
  const rt = createRuntime(cfg, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
  await secretStoreFor(rt).save(Buffer.from(privateKey.write()))
  const key = (await secretStoreFor(rt).signer('alice@example.org'))!
  return { dir, rt, message, key, privateKey }
}

function rawEd25519(): Op {
  const { privateKey } = crypto.generateKeyPairSync('ed25519')
  const digest = crypto.randomBytes(32)
  return () => crypto.sign(null, digest, privateKey)
}

function stepOp(f: Fixture): Op {
  const optional = async () => 'optional' as const
  return async () => {
    const d = await signStep(f.rt, f.message, { login: 'alice@example.org' }, { signaturePolicy: optional })
    if (d.outcome !== 'signed') throw new Error(`signStep: ${d.outcome} ${d.reason}`)
  }
}

function engineOp(f: Fixture): Op {
  return () => {
    if (signMessage(f.message, f.key).kind !== 'signed') throw new Error('signMessage did not sign')
  }
}

function openpgpOp(f: Fixture): Op {
  const inner = f.message.subarray(f.message.indexOf('Content-Type:'))
  return async () => {
    const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
    await openpgp.sign({ message, signingKeys: f.privateKey, detached: true })
  }
}

const RAW = 'raw Ed25519 crypto.sign'
const STEP = 'linksec signStep'

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const rounds = 3
  const ms = opts.quick ? 400 : 2000
  const f = await fixture()
  try {
    const ops: [string, Op, number][] = [
      [RAW, rawEd25519(), 1e7],
      [STEP, stepOp(f), 1e7],
      ['linksec signMessage', engineOp(f), 1e7],
      ['openpgp.js sign()', openpgpOp(f), 1e7],
    ]
    for (const [, op] of ops) for (let i = 0; i < 200; i++) await op() // warm-up
    const rates = new Map<string, Rate[]>(ops.map(([n]) => [n, []]))
    for (let r = 0; r < rounds; r++) {
      opts.progress(r / rounds, `round ${r + 1} of ${rounds}`)
      for (const [name, v] of await interleaved(rotate(ops, r), ms)) rates.get(name)!.push(v)
    }
    return result(rates, f.message.length)
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true })
  }
}

function result(rates: Map<string, Rate[]>, bytes: number): BenchResult {
  const wall = (n: string) => spread((rates.get(n) ?? []).map((r) => r.perSecond)).median
  const cpu = (n: string) => spread((rates.get(n) ?? []).map((r) => r.perCpuSecond)).median
  const rows = [...rates].map(([name, v]) => ({
    method: name,
    'signatures/s': formatSpread(spread(v.map((r) => r.perSecond))),
    'µs each': round(1e6 / wall(name)),
    'CPU µs each': round(1e6 / cpu(name)),
    'vs raw (CPU)': round(ratio(cpu(name), cpu(RAW))),
  }))
  return {
    name: 'sign',
    rows,
    ratios: {
      'signStep/raw': round(ratio(cpu(STEP), cpu(RAW))),
      'signMessage/raw': round(ratio(cpu('linksec signMessage'), cpu(RAW))),
      'openpgp.js/raw': round(ratio(cpu('openpgp.js sign()'), cpu(RAW))),
    },
    goals: { 'signStep/raw': atLeast(ratio(cpu(STEP), cpu(RAW)), 0.5) },
    notes: [
      `one ${bytes}-byte text/plain message signed with Ed25519 (legacy EdDSA, SHA-256) into RFC 3156 multipart/signed; median of 3 rounds (min-max), each round 50 ms slices of every method in turn, order rotated per round, one signature at a time`,
      'raw = crypto.sign(null, 32-byte digest, cached KeyObject): the Ed25519 math alone, on the main thread; the goal compares CPU per signature (all threads, process.cpuUsage)',
    ],
  }
}

if (require.main === module) runStandalone('sign', run)
