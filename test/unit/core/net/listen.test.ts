import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { describe, it } from 'node:test'
import { ConfigError } from '../../../../core/errors'
import { ListenError, listenOn } from '../../../../core/net/listen'

const OPTS = { service: 'test', key: '[test] listen' }

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'listen-'))
}

function close(s: net.Server): Promise<void> {
  return new Promise((r) => s.close(() => r()))
}

describe('listenOn (core/net/listen.ts)', () => {
  it('listens on inet and inet6 literals, reporting the port it got', async () => {
    for (const host of ['127.0.0.1', '::1']) {
      const s = net.createServer()
      const address = await listenOn(s, { kind: 'inet', host, port: 0 }, OPTS)
      const port = (s.address() as net.AddressInfo).port
      assert.equal(address, host === '::1' ? `inet:[::1]:${port}` : `inet:127.0.0.1:${port}`)
      await close(s)
    }
  })

  it('refuses a host name (listening must not resolve) as a configuration error', async () => {
    await assert.rejects(
      listenOn(net.createServer(), { kind: 'inet', host: 'localhost', port: 0 }, OPTS),
      (e: unknown) =>
        e instanceof ConfigError && /\[test\] listen .*names a host; write an IP address/.test(e.message),
    )
  })

  it('removes a stale socket file, sets the mode, and refuses a live socket or a plain file', async () => {
    const dir = tmp()
    try {
      const sock = path.join(dir, 's.sock')
      const child = spawn(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`,
      ])
      await new Promise((r) => child.stdout.once('data', r))
      child.kill('SIGKILL')
      await new Promise((r) => child.once('exit', r))
      const s = net.createServer()
      assert.equal(
        await listenOn(s, { kind: 'unix', path: sock }, { ...OPTS, socketMode: 0o666 }),
        `unix:${sock}`,
      )
      assert.equal(fs.statSync(sock).mode & 0o777, 0o666)
      await assert.rejects(
        listenOn(net.createServer(), { kind: 'unix', path: sock }, OPTS),
        (e: unknown) =>
          e instanceof ListenError &&
          e.message.includes(`test cannot listen on unix:${sock}: another process is listening on ${sock}`),
      )
      assert.ok(fs.statSync(sock).isSocket(), 'the live socket is left alone')
      await close(s)
      const file = path.join(dir, 'plain')
      fs.writeFileSync(file, 'keep me')
      await assert.rejects(listenOn(net.createServer(), { kind: 'unix', path: file }, OPTS), /not a socket/)
      assert.equal(fs.readFileSync(file, 'utf8'), 'keep me')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('names the address and the key when the port is taken', async () => {
    const a = net.createServer()
    await listenOn(a, { kind: 'inet', host: '127.0.0.1', port: 0 }, OPTS)
    const port = (a.address() as net.AddressInfo).port
    await assert.rejects(
      listenOn(net.createServer(), { kind: 'inet', host: '127.0.0.1', port }, OPTS),
      new RegExp(`test cannot listen on inet:127\\.0\\.0\\.1:${port}: EADDRINUSE; set \\[test\\] listen`),
    )
    await close(a)
  })
})
