/**
 * Time-boxed fuzzing (FUZZ_SECONDS, default 30) of every target in
 * ./targets: random and mutated inputs; each input must be handled or
 * rejected with the target's own error type. Inputs that crash are written
 * to test/fixtures/fuzz/<target>/crash-*.bin, and every file already there
 * is replayed first (crashers found earlier stay fixed).
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'

export interface FuzzTarget {
  name: string
  /** Seed inputs to mutate. */
  seeds(): Buffer[]
  /** Must return normally or throw an expected error; anything else is a crash. */
  fuzzOne(input: Buffer): void | Promise<void>
  isExpectedError(e: unknown): boolean
  /** Releases what the target started (a server), so the run can exit. */
  close?(): Promise<void>
}

const ROOT = path.resolve(__dirname, '..', '..', '..')
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'fuzz')

function mutate(seed: Buffer): Buffer {
  const b = Buffer.from(seed)
  const n = 1 + crypto.randomInt(8)
  for (let i = 0; i < n && b.length; i++) {
    const at = crypto.randomInt(b.length)
    switch (crypto.randomInt(4)) {
      case 0:
        b[at] = crypto.randomInt(256)
        break
      case 1:
        b[at] = b[at]! ^ (1 << crypto.randomInt(8))
        break
      case 2:
        return Buffer.concat([b.subarray(0, at), crypto.randomBytes(crypto.randomInt(16)), b.subarray(at)])
      default:
        return b.subarray(0, at)
    }
  }
  return b
}

async function runTarget(t: FuzzTarget, ms: number): Promise<number> {
  const dir = path.join(FIXTURES, t.name)
  const replay = fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f))) : []
  const seeds = t.seeds()
  const end = Date.now() + ms
  let runs = 0
  let crashes = 0
  const tryOne = async (input: Buffer) => {
    runs++
    try {
      await t.fuzzOne(input)
    } catch (e) {
      if (t.isExpectedError(e)) return
      crashes++
      fs.mkdirSync(dir, { recursive: true })
      const file = path.join(
        dir,
        `crash-${crypto.createHash('sha1').update(input).digest('hex').slice(0, 12)}.bin`,
      )
      fs.writeFileSync(file, input)
      console.error(
        `fuzz ${t.name}: crash saved to ${path.relative(ROOT, file)}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
      )
    }
  }
  for (const input of [...replay, ...seeds]) await tryOne(input)
  // Bounded in count and time.
  while (Date.now() < end && runs < 5_000_000) {
    const pick = crypto.randomInt(10)
    const input =
      pick < 2 || seeds.length === 0
        ? crypto.randomBytes(crypto.randomInt(64))
        : mutate(seeds[crypto.randomInt(seeds.length)]!)
    await tryOne(input)
  }
  console.log(`fuzz ${t.name}: ${runs} inputs, ${crashes} crashes`)
  return crashes
}

async function main(): Promise<void> {
  const seconds = Number(process.env.FUZZ_SECONDS ?? 30)
  const dir = path.join(__dirname, 'targets')
  const targets: FuzzTarget[] = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => (require(path.join(dir, f)) as { target: FuzzTarget }).target)
  if (targets.length === 0) throw new Error('no fuzz targets found')
  let crashes = 0
  for (const t of targets) {
    crashes += await runTarget(t, (seconds * 1000) / targets.length)
    await t.close?.()
  }
  if (crashes) {
    console.error(`${crashes} crashing inputs; see test/fixtures/fuzz/`)
    process.exit(1)
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
