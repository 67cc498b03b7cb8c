/**
 * Runs a benchmark inside a private network + mount namespace, for peers that
 * resolve names through the system resolver (haraka-plugin-dkim asks Node's
 * `dns.promises.resolveTxt`, i.e. /etc/resolv.conf). Inside the namespace:
 * only `lo` (brought up), and /etc/resolv.conf bind-mounted to a file naming
 * 127.0.0.1, where the benchmark serves its zone on port 53
 * (test/helpers/dns-server.ts). The host's resolver is never reachable: the
 * namespace has no other interface, and the child checks both before it
 * measures anything. The same trick as /work/shared/peers/mta-sts-lab.sh.
 *
 * The parent (`runInDnsLab`) re-runs the module's own file as a child under
 * `unshare`; the child (`dnsLabChild`) measures, reports progress as JSON lines
 * on stderr and writes its BenchResult to a file. Needs root (unshare, mount).
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { BenchOptions, BenchResult, BenchRun } from './types'

const CHILD_FLAG = '--dns-lab-child'
const RESOLV_CONF = 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n'
const PROGRESS = 'dns-lab-progress '

/** True in the child that `runInDnsLab` started. */
export function inDnsLab(argv: readonly string[] = process.argv): boolean {
  return argv.includes(CHILD_FLAG)
}

/** Runs `script` (a compiled bench module) in the namespace and returns what its child measured. */
export async function runInDnsLab(script: string, opts: BenchOptions): Promise<BenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-dns-lab-'))
  fs.chmodSync(dir, 0o755)
  const resolv = path.join(dir, 'resolv.conf')
  const out = path.join(dir, 'result.json')
  fs.writeFileSync(resolv, RESOLV_CONF, { mode: 0o644 })
  const inner = 'ip link set lo up && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
  const args = ['--net', '--mount', '--propagation', 'private', '--', 'sh', '-c', inner, 'dns-lab', resolv]
  args.push(process.execPath, script, CHILD_FLAG, out, ...(opts.quick ? ['--quick'] : []))
  try {
    const stderr = await runChild(args, opts)
    if (!fs.existsSync(out))
      throw new Error(`the benchmark in the DNS lab wrote no result: ${stderr.slice(-600)}`)
    return JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResult
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

function runChild(args: string[], opts: BenchOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    let partial = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) {
        if (!line.startsWith(PROGRESS)) stderr += line + '\n'
        else relayProgress(line.slice(PROGRESS.length), opts)
      }
    })
    // SIGTERM lets the child stop its peers (its `finally`) before it exits.
    const stop = () => child.kill('SIGTERM')
    opts.signal?.addEventListener('abort', stop, { once: true })
    child.once('error', reject)
    child.once('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', stop)
      if (code === 0) resolve(stderr)
      else reject(new Error(`DNS lab child ended with ${signal ?? `exit ${code}`}: ${stderr.slice(-600)}`))
    })
  })
}

function relayProgress(json: string, opts: BenchOptions): void {
  try {
    const { fraction, label } = JSON.parse(json) as { fraction: number; label: string }
    opts.progress(fraction, label)
  } catch {
    // A torn line only costs one progress update.
  }
}

/** Refuses to measure unless the namespace is what `runInDnsLab` promised: lo only, our resolv.conf. */
function assertIsolated(): void {
  const interfaces = Object.keys(os.networkInterfaces())
  if (interfaces.some((name) => name !== 'lo'))
    throw new Error(`DNS lab: interfaces other than lo are present (${interfaces.join(', ')})`)
  const conf = fs.readFileSync('/etc/resolv.conf', 'utf8')
  if (conf !== RESOLV_CONF) throw new Error(`DNS lab: /etc/resolv.conf is not the lab's: ${conf}`)
}

/** The child's side: measure with `run`, write the result where the parent reads it. */
export function dnsLabChild(run: BenchRun, argv: readonly string[] = process.argv): void {
  const out = argv[argv.indexOf(CHILD_FLAG) + 1]
  if (!out) throw new Error(`${CHILD_FLAG} needs the result file`)
  const abort = new AbortController()
  process.once('SIGTERM', () => abort.abort(new Error('stopped by the benchmark harness')))
  const progress = (fraction: number, label: string) =>
    process.stderr.write(PROGRESS + JSON.stringify({ fraction, label }) + '\n')
  void (async () => {
    assertIsolated()
    const result = await run({ quick: argv.includes('--quick'), progress, signal: abort.signal })
    fs.writeFileSync(out, JSON.stringify(result))
  })().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  })
}
