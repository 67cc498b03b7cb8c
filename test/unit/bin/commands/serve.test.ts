import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, it } from 'node:test'
import { MilterClient, runTransaction } from '../../../helpers/milter-client'
import { REPO_ROOT, startLinksecServe, writeConfigDir } from '../../../helpers/postfix'

const LINKSEC = path.join(REPO_ROOT, 'dist', 'bin', 'linksec.js')

/** Runs `linksec serve` on a config that must not start; returns exit code and output. */
function serveFails(
  ini: Record<string, Record<string, string>>,
): Promise<{ code: number | null; output: string }> {
  const dir = writeConfigDir(ini)
  const child = spawn(process.execPath, [LINKSEC, 'serve', '--config', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d))
  child.stderr.on('data', (d: Buffer) => (output += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000)
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer)
      fs.rmSync(dir, { recursive: true, force: true })
      resolve({ code, output })
    }),
  )
}

describe('linksec serve', () => {
  it('stops start-up on a bad value, naming the key and the fix (exit 78)', async () => {
    const r = await serveFails({ milter: { listen: 'tcp://127.0.0.1:8891' } })
    assert.equal(r.code, 78, r.output)
    assert.match(
      r.output,
      /\[milter\] listen: "tcp:\/\/127\.0\.0\.1:8891" is not valid; write inet:HOST:PORT/,
    )
  })

  it('stops start-up on an unknown key, listing the known ones', async () => {
    const r = await serveFails({ milter: { max_session: '10' } })
    assert.equal(r.code, 78, r.output)
    assert.match(r.output, /\[milter\] max_session is not a known key; known keys: .*max_sessions/)
  })

  it('stops start-up with a message when the milter address is taken', async () => {
    const first = await startLinksecServe()
    try {
      const r = await serveFails({
        milter: { listen: first.milterAddress },
        socketmap: { enabled: 'false' },
        http: { enabled: 'false' },
      })
      assert.equal(r.code, 1, r.output)
      assert.match(
        r.output,
        /milter cannot listen on inet:127\.0\.0\.1:\d+: EADDRINUSE; set \[milter\] listen/,
      )
    } finally {
      await first.stop()
    }
  })

  it('prints one line per listener, serves, and exits 0 on SIGTERM', async () => {
    const serve = await startLinksecServe({ ini: { log: { level: 'warn' } } })
    assert.match(serve.output(), new RegExp(`linksec: milter listening on ${serve.milterAddress}`))
    const c = await MilterClient.connect(serve.milterAddress)
    await c.negotiate()
    const r = await runTransaction(c, {
      mail: ['<a@example.org>'],
      rcpt: [['<b@example.net>']],
      headers: [['Subject', 'x']],
      body: 'x\r\n',
    })
    assert.equal(r.step, 'eom')
    await c.quit()
    assert.equal(await serve.stop('SIGTERM'), 0, serve.output())
  })
})
