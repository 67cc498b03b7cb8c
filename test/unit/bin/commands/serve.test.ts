import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
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

  /** One netstring socketmap request on a unix socket; resolves with the raw reply. */
  function socketmapAsk(sockPath: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const c = net.connect(sockPath)
      let got = ''
      c.on('data', (d: Buffer) => {
        got += d.toString()
        if (/^\d+:.*,$/s.test(got)) {
          c.destroy()
          resolve(got)
        }
      })
      c.on('error', reject)
      c.write('19:nolinksec 192.0.2.1,')
    })
  }

  for (const service of ['milter', 'socketmap'] as const) {
    it(`a second serve on the same unix ${service} socket refuses to start, naming the path; the first keeps serving`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-two-'))
      const sock = path.join(dir, `${service}.sock`)
      const first = await startLinksecServe(
        service === 'milter'
          ? { milterListen: `unix:${sock}` }
          : { ini: { socketmap: { listen: `unix:${sock}` } } },
      )
      try {
        const r = await serveFails({
          [service]: { listen: `unix:${sock}` },
          ...(service === 'milter' ? {} : { milter: { enabled: 'false' } }),
          http: { enabled: 'false' },
          ...(service === 'milter' ? { socketmap: { enabled: 'false' } } : {}),
        })
        assert.equal(r.code, 1, r.output)
        assert.ok(
          r.output.includes(
            `${service} cannot listen on unix:${sock}: another process is listening on ${sock}`,
          ),
          r.output,
        )
        assert.ok(fs.statSync(sock).isSocket(), 'the socket file is still there')
        if (service === 'milter') {
          const c = await MilterClient.connect(`unix:${sock}`)
          await c.negotiate()
          const t = await runTransaction(c, {
            mail: ['<a@example.org>'],
            rcpt: [['<b@example.net>']],
            headers: [['Subject', 'x']],
            body: 'x\r\n',
          })
          assert.equal(t.step, 'eom')
          await c.quit()
        } else {
          // A wrong map name is answered PERM by the first instance: it still owns the socket.
          assert.match(await socketmapAsk(sock), /^\d+:PERM /)
        }
      } finally {
        await first.stop()
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  }
})
