/**
 * The linksec Haraka plugin's own CPU per message, in one process and
 * without sockets: Haraka's real Transaction (node_modules/Haraka, its real
 * haraka-message-stream and header parser) filled line by line with the
 * benchmark message (bench/lib/signed-message.ts, the sender's key in the
 * local store), then the hooks the plugin runs on it — data (the body kept
 * as it arrives), data_post (the message pipeline) and queue (the header
 * additions) — with a silent logger. The same transactions without the hooks
 * are the baseline; "added" is the difference. In process the figures move
 * by a few per cent between runs where the end-to-end ones
 * (bench/trace-haraka-cpu.ts, bench/haraka-e2e.ts) move by ±20 % on a
 * shared 2-CPU machine, so a change of a few µs shows here first; the
 * end-to-end cost is about twice this (Haraka's other work between two
 * messages leaves linksec's code and data out of the caches).
 *
 * --tree DIR (repeatable) measures another built tree's plugin beside this
 * one, in alternating rounds. --concurrency K keeps K transactions in
 * flight, each line added in its own event-loop turn (as 20 SMTP sessions
 * do), which is what makes garbage collection show (run with --trace-gc).
 *
 *   node dist/bench/trace-haraka-inproc.js [--quick] [--tree DIR]... [--concurrency K]
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { writeBenchMessage, RECIPIENT, SENDER } from './lib/signed-message'
import { median } from './lib/stats'

interface Txn {
  mail_from: unknown
  rcpt_to: unknown[]
  add_data(line: Buffer): void
  end_data(cb: () => void): void
}

interface TreeApi {
  label: string
  createTransaction: (id: string, cfg: object) => Txn
  /** The plugin's hooks on one filled transaction, or undefined for the baseline. */
  hooks?: {
    data(conn: object): void
    dataPost(conn: object): Promise<number | undefined>
    queue(conn: object): void
  }
}

const address = (a: string) => ({ format: () => `<${a}>`, address: a, host: a.split('@')[1] })

async function treeApi(tree: string, dir: string, publicKey: string, label: string): Promise<TreeApi[]> {
  const d = (m: string) => require(path.join(tree, 'dist', m)) as Record<string, unknown>
  const { createRuntime } = d('core/runtime.js') as typeof import('../core/runtime')
  const { parseConfig } = d('core/config/index.js') as typeof import('../core/config')
  const { createMetrics } = d('core/metrics.js') as typeof import('../core/metrics')
  const { silentLogger } = d('core/log.js') as typeof import('../core/log')
  const { keyStoreFor } = d('core/keys/index.js') as typeof import('../core/keys')
  const message = d('plugins/message.js') as typeof import('../plugins/message')
  const haraka = require(path.join(tree, 'node_modules', 'Haraka', 'transaction')) as {
    createTransaction: (id: string, cfg: object) => Txn
  }
  const own = fs.mkdtempSync(path.join(dir, 'tree-'))
  const cfg = parseConfig({ main: { authserv_id: 'mx.bench' }, keys: { methods: 'local', dir: 'keys' } }, own)
  const rt = createRuntime(cfg, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
  await keyStoreFor(rt).add(Buffer.from(publicKey))
  const ctx = { plugin: {} as never, rt }
  const dataPost = message.dataPostHandler()
  const capture = (message as { captureBody?: (t: unknown) => void }).captureBody
  const tx = (conn: object) => (conn as { transaction: never }).transaction
  return [
    { label: `${label} (no hooks)`, createTransaction: haraka.createTransaction },
    {
      label,
      createTransaction: haraka.createTransaction,
      hooks: {
        data: (conn) => capture?.(tx(conn)),
        dataPost: async (conn) => {
          let code: number | undefined
          await dataPost(ctx, (c?: number) => (code = c), conn)
          return code
        },
        queue: (conn) => message.queueHandler(ctx, () => {}, conn),
      },
    },
  ]
}

async function oneMessage(api: TreeApi, lines: Buffer[], i: number, turns: boolean): Promise<void> {
  const txn = api.createTransaction(`bench-${i}`, {})
  txn.mail_from = address(SENDER)
  txn.rcpt_to = [address(RECIPIENT)]
  const conn = {
    uuid: `c${i}`,
    tls: { enabled: false },
    capabilities: null,
    transaction: txn,
    remote: { ip: '127.0.0.1', host: 'localhost' },
    hello: { host: 'client.example.test' },
    notes: {},
  }
  api.hooks?.data(conn)
  for (const l of lines) {
    txn.add_data(l)
    if (turns) await new Promise((r) => setImmediate(r))
  }
  await new Promise<void>((r) => txn.end_data(r))
  if (!api.hooks) return
  const code = await api.hooks.dataPost(conn)
  // CONT (900) or no code: the message goes on; anything else means the setup is wrong.
  if (code !== undefined && code !== 900) throw new Error(`${api.label}: data_post answered ${code}`)
  api.hooks.queue(conn)
}

/** CPU µs per message over `count` messages, `concurrency` in flight. */
async function round(api: TreeApi, lines: Buffer[], count: number, concurrency: number): Promise<number> {
  const c0 = process.cpuUsage()
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await oneMessage(api, lines, next++, concurrency > 1)
    }),
  )
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / count
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const quick = argv.includes('--quick')
  const trees = [path.resolve(__dirname, '..', '..')]
  let concurrency = 1
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--tree') trees.push(path.resolve(argv[++i]!))
    else if (argv[i] === '--concurrency') concurrency = Math.max(1, Number(argv[++i]) || 1)
  }
  const count = quick ? 2000 : 5000
  const rounds = quick ? 3 : 7
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-haraka-inproc-'))
  try {
    const msg = await writeBenchMessage(dir)
    const wire = fs.readFileSync(msg.file, 'latin1').replace(/\r?\n/g, '\r\n')
    const lines = wire.split(/(?<=\n)/).map((l) => Buffer.from(l.startsWith('.') ? `.${l}` : l, 'latin1'))
    const apis: TreeApi[] = []
    for (const tree of trees)
      apis.push(...(await treeApi(tree, dir, msg.publicKeyArmored, path.basename(tree))))
    for (const a of apis) await round(a, lines, count, concurrency) // warm-up
    const seen = new Map<string, number[]>(apis.map((a) => [a.label, []]))
    for (let r = 0; r < rounds; r++)
      for (const a of r % 2 ? [...apis].reverse() : apis)
        seen.get(a.label)!.push(await round(a, lines, count, concurrency))
    for (let t = 0; t < apis.length; t += 2) {
      const base = seen.get(apis[t]!.label)!
      const withHooks = seen.get(apis[t + 1]!.label)!
      const added = withHooks.map((v, i) => v - base[i]!)
      process.stdout.write(
        `${apis[t + 1]!.label.padEnd(14)} added µs/msg median ${median(added).toFixed(1)} min ${Math.min(...added).toFixed(1)}` +
          `  (baseline ${median(base).toFixed(1)}; ${rounds} rounds × ${count}, ${concurrency} in flight)\n`,
      )
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (require.main === module)
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    process.exitCode = 1
  })
