/**
 * Configuration mistakes that used to pass validation and fail only after
 * the milter listened (issue 12, item 9): each stops `linksec serve` before
 * it listens, exit 78, naming the key (and for duplicates both lines).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { describe, it } from 'node:test'
import { REPO_ROOT } from '../../../helpers/postfix'

const LINKSEC = path.join(REPO_ROOT, 'dist', 'bin', 'linksec.js')

function serveFails(ini: string): Promise<{ code: number | null; output: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-serve-config-'))
  fs.writeFileSync(path.join(dir, 'linksec.ini'), ini)
  const child = spawn(process.execPath, [LINKSEC, 'serve', '--config', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LINKSEC_FORBID_SYSTEM_RESOLVER: '1' },
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000)
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer)
      fs.rmSync(dir, { recursive: true, force: true })
      resolve({ code, output })
    }),
  )
}

/** Listeners on port 0 so a case that wrongly starts does not collide with anything. */
const QUIET = '[milter]\nlisten=inet:127.0.0.1:0\n[socketmap]\nenabled=false\n[http]\nenabled=false\n'

describe('linksec serve refuses, before listening, what it could not run', () => {
  const cases: [string, string, RegExp][] = [
    [
      'a DNS server on port 0',
      `${QUIET}[resolver]\nservers=127.0.0.1:0\n`,
      /\[resolver\] servers: "127\.0\.0\.1:0": port 0 is out of range/,
    ],
    [
      'a DNS server that is no IP',
      `${QUIET}[resolver]\nservers=999.1.1.1:53\n`,
      /\[resolver\] servers: .*999\.1\.1\.1.*is not an IP address/,
    ],
    [
      'an invalid IP as milter listen',
      '[milter]\nlisten=inet:999.1.1.1:1\n',
      /\[milter\] listen: "inet:999\.1\.1\.1:1": 999\.1\.1\.1 is not an IP address/,
    ],
    [
      'a host name as milter listen',
      '[milter]\nlisten=inet:localhost:8891\n',
      /\[milter\] listen: .*localhost is not an IP address/,
    ],
    [
      'a host name as socketmap listen',
      '[milter]\nlisten=inet:127.0.0.1:0\n[http]\nenabled=false\n[socketmap]\nlisten=inet:mx.example:8461\n',
      /\[socketmap\] listen: .*mx\.example is not an IP address/,
    ],
    [
      'a host name as http listen',
      `[milter]\nlisten=inet:127.0.0.1:0\n[socketmap]\nenabled=false\n[http]\nlisten=localhost:9464\n`,
      /\[http\] listen: .*localhost is not an IP address/,
    ],
    ['an unbracketed IPv6 listen', '[milter]\nlisten=inet6:::1:8891\n', /\[milter\] listen/],
    [
      'a key set twice',
      `${QUIET}[verify]\non_fail=reject\n; later\non_fail=tag\n`,
      /\[verify\] on_fail is set twice \(lines 8 and 10\)/,
    ],
  ]
  for (const [what, ini, want] of cases)
    it(`${what}: exit 78 naming the key`, async () => {
      const r = await serveFails(ini)
      assert.equal(r.code, 78, r.output)
      assert.match(r.output, want)
    })
})
