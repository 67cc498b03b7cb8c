/**
 * Socketmap TLS-policy queries per second for a cached domain: `linksec
 * serve` against postfix-mta-sts-resolver (mta-sts-daemon), in the same run,
 * on the same machine, answering the same MTA-STS domain from their caches.
 *
 * mta-sts-daemon must resolve names, so both run inside
 * shared/peers/mta-sts-lab.sh (a private network namespace with dnsmasq, an
 * HTTPS policy host and the daemon; nothing leaves the machine). This file
 * is both the benchmark (`run`, which starts the lab) and, with
 * LINKSEC_SOCKETMAP_BENCH_INNER=1, the program the lab runs.
 *
 * Load: like Postfix, each client connection sends one request and waits for
 * the reply before the next; CONNECTIONS connections run at once. Rounds
 * alternate the order of the two servers. Figure: queries/s, median of rounds.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { encodeNetstring, NetstringDecoder } from '../milter/socketmap/netstring'
import { PEERS_DIR, SBIN_PATH } from './lib/peers'
import { runStandalone } from './lib/standalone'
import { atLeast, type BenchOptions, type BenchResult } from './lib/types'

const INNER_ENV = 'LINKSEC_SOCKETMAP_BENCH_INNER'
const DOMAIN = 'example.test'
const ROOT = path.resolve(__dirname, '..', '..')

interface Plan {
  rounds: number
  queries: number
  connections: number
}

interface InnerResult {
  linksec: number[]
  baseline: number[]
  replies: { linksec: string; baseline: string }
}

// ------------------------------------------------------------------ client

/** One Postfix-like connection: a request, then wait for its reply. */
class Connection {
  private readonly decoder = new NetstringDecoder(100_000)
  private waiting: ((reply: string) => void) | undefined

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true)
    socket.on('data', (chunk) => {
      for (const r of this.decoder.push(chunk)) this.waiting?.(r.toString('latin1'))
    })
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Connection(s)))
      s.once('error', reject)
    })
  }

  ask(request: Buffer): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socketmap reply took over 10 s')), 10_000)
      this.waiting = (r) => {
        clearTimeout(timer)
        resolve(r)
      }
      this.socket.write(request)
    })
  }

  close(): void {
    this.socket.destroy()
  }
}

/** Queries/s for `queries` requests spread over `connections` connections. */
async function measure(port: number, map: string, plan: Plan): Promise<number> {
  const conns = await Promise.all(Array.from({ length: plan.connections }, () => Connection.open(port)))
  const request = encodeNetstring(`${map} ${DOMAIN}`)
  const per = Math.ceil(plan.queries / plan.connections)
  const start = process.hrtime.bigint()
  await Promise.all(
    conns.map(async (c) => {
      for (let i = 0; i < per; i++) {
        const r = await c.ask(request)
        if (!r.startsWith('OK ')) throw new Error(`unexpected reply ${JSON.stringify(r)}`)
      }
    }),
  )
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  conns.forEach((c) => c.close())
  return (per * plan.connections) / seconds
}

/** Asks until the answer is OK (the first ask fetches the policy), and returns it. */
async function warm(port: number, map: string): Promise<string> {
  const c = await Connection.open(port)
  try {
    for (let i = 0; i < 50; i++) {
      const r = await c.ask(encodeNetstring(`${map} ${DOMAIN}`))
      if (r.startsWith('OK ')) return r
      await new Promise((res) => setTimeout(res, 200))
    }
    throw new Error(`${map} on port ${port} never answered OK for ${DOMAIN}`)
  } finally {
    c.close()
  }
}

// ------------------------------------------------------------------ inside the lab

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

async function waitForPort(port: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`linksec serve did not listen on ${port}`)
}

/** `linksec serve` with only the socketmap, pointed at the lab's DNS and CA. */
async function startLinksec(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort()
  fs.writeFileSync(
    path.join(dir, 'linksec.ini'),
    [
      '[log]\nlevel=warn',
      '[milter]\nenabled=false',
      '[http]\nenabled=false',
      `[socketmap]\nlisten=inet:127.0.0.1:${port}`,
      // The lab's DNS answers only MTA-STS names (it REFUSES the rest), so both servers do the same work.
      '[policy]\ndane=false\ntxt=false',
      '[resolver]\nservers=127.0.0.1:53',
      `[net]\nca_file=${process.env.SSL_CERT_FILE}\nallow_private_addresses=true\nhttps_port=443`,
    ].join('\n\n') + '\n',
  )
  const child = spawn(
    process.execPath,
    [path.join(ROOT, 'dist', 'bin', 'linksec.js'), 'serve', '--config', dir],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  )
  await waitForPort(port)
  return { child, port }
}

async function inner(): Promise<void> {
  const plan = JSON.parse(process.env.LINKSEC_SOCKETMAP_PLAN ?? '{}') as Plan
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-smbench-'))
  const { child, port } = await startLinksec(dir)
  try {
    const stsPort = Number(process.env.STS_PORT)
    const targets = [
      { key: 'linksec' as const, port, map: 'linksec' },
      { key: 'baseline' as const, port: stsPort, map: 'postfix' },
    ]
    const replies = { linksec: await warm(port, 'linksec'), baseline: await warm(stsPort, 'postfix') }
    const out: InnerResult = { linksec: [], baseline: [], replies }
    for (let r = 0; r < plan.rounds; r++) {
      for (const t of r % 2 ? [...targets].reverse() : targets)
        out[t.key].push(await measure(t.port, t.map, plan))
    }
    process.stdout.write(`RESULT ${JSON.stringify(out)}\n`)
  } finally {
    child.kill('SIGTERM')
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// ------------------------------------------------------------------ the benchmark

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

function skipped(why: string): BenchResult {
  return { name: 'socketmap', rows: [], ratios: {}, notes: [`skipped: ${why}`] }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  if (process.getuid?.() !== 0) return skipped('mta-sts-lab.sh needs root (a private network namespace)')
  const which = spawnSync('sh', ['-c', 'command -v mta-sts-daemon dnsmasq openssl'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: SBIN_PATH },
  })
  if (which.status !== 0)
    return skipped('needs mta-sts-daemon (postfix-mta-sts-resolver), dnsmasq and openssl')
  const plan: Plan = opts.quick
    ? { rounds: 3, queries: 3000, connections: 8 }
    : { rounds: 5, queries: 20000, connections: 8 }
  opts.progress(0.05, 'starting the MTA-STS lab')
  const r = await runLab(
    { [INNER_ENV]: '1', LINKSEC_SOCKETMAP_PLAN: JSON.stringify(plan) },
    opts.quick ? 110_000 : 500_000,
    opts.signal,
  )
  const line = /^RESULT (.*)$/m.exec(r.stdout)
  if (r.code !== 0 || !line) throw new Error(`mta-sts-lab run failed (${r.code}): ${r.stderr.slice(-2000)}`)
  opts.progress(1, 'done')
  return report(JSON.parse(line[1]!) as InnerResult, plan)
}

/** Runs this file inside mta-sts-lab.sh, bounded in time. */
function runLab(
  env: Record<string, string>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(PEERS_DIR, 'mta-sts-lab.sh'), process.execPath, __filename], {
      env: { ...process.env, PATH: SBIN_PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      signal,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

function report(res: InnerResult, plan: Plan): BenchResult {
  const fmt = (xs: number[]) =>
    `${Math.round(median(xs))} (${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))})`
  const ratio = median(res.linksec) / median(res.baseline)
  return {
    name: 'socketmap',
    rows: [
      {
        server: 'linksec serve (socketmap)',
        'queries/s median (min–max)': fmt(res.linksec),
        reply: res.replies.linksec,
      },
      {
        server: 'postfix-mta-sts-resolver',
        'queries/s median (min–max)': fmt(res.baseline),
        reply: res.replies.baseline,
      },
    ],
    ratios: { 'linksec/mta-sts-daemon': ratio },
    goals: { 'linksec/mta-sts-daemon': atLeast(ratio, 2.0) },
    notes: [
      `${plan.rounds} rounds x ${plan.queries} queries for ${DOMAIN} (cached), ${plan.connections} connections, one request in flight per connection (as Postfix)`,
      'both inside shared/peers/mta-sts-lab.sh on loopback; linksec with [policy] dane=false txt=false (the lab DNS answers only MTA-STS names)',
    ],
  }
}

if (require.main === module) {
  if (process.env[INNER_ENV] === '1')
    inner().catch((e: unknown) => {
      process.stderr.write(`socketmap bench (inside the lab): ${String(e)}\n`)
      process.exit(1)
    })
  else runStandalone('socketmap', run)
}
