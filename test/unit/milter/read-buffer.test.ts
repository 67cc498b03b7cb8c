import assert from 'node:assert/strict'
import * as net from 'node:net'
import { describe, it } from 'node:test'
import { isSharedRead, readIntoShared } from '../../../milter/read-buffer'

describe('shared read buffer (milter/read-buffer.ts)', () => {
  it('reads an accepted socket into the one shared buffer on this Node, in order, through pause and resume', async () => {
    const sent = Buffer.alloc(1024 * 1024)
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 13) & 0xff
    const got: Buffer[] = []
    let shared = true
    let taken = false
    const done = new Promise<void>((resolve, reject) => {
      const server = net.createServer((sock) => {
        let bytes = 0
        taken = readIntoShared(sock, (chunk) => {
          shared &&= isSharedRead(chunk)
          got.push(Buffer.from(chunk)) // valid only during the call: copied
          bytes += chunk.length
          if (got.length === 3) {
            sock.pause()
            setTimeout(() => sock.resume(), 20)
          }
          if (bytes === sent.length) {
            sock.end()
            server.close()
            resolve()
          }
        })
        if (!taken) reject(new Error('readIntoShared refused this socket'))
      })
      server.listen(0, '127.0.0.1', () => {
        const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
        c.on('error', reject)
        for (let at = 0; at < sent.length; at += 100_000) c.write(sent.subarray(at, at + 100_000))
      })
    })
    await done
    assert.equal(taken, true, "this Node's sockets take a user read buffer (else memory under attack grows)")
    assert.equal(shared, true, 'every chunk was a view of the shared buffer')
    assert.deepEqual(Buffer.concat(got), sent)
  })
})
