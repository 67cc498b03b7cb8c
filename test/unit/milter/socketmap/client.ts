/**
 * A minimal socketmap client for tests: one connection, requests sent as
 * netstrings, replies read back in order.
 */
import * as net from 'node:net'
import { encodeNetstring, NetstringDecoder } from '../../../../milter/socketmap/netstring'

export class SocketmapClient {
  private readonly decoder = new NetstringDecoder(100_000)
  private readonly replies: string[] = []
  private waiters: (() => void)[] = []
  closed = false

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      for (const r of this.decoder.push(chunk)) this.replies.push(r.toString('latin1'))
      this.wake()
    })
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
    socket.on('error', () => undefined)
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<SocketmapClient> {
    const s = net.connect(port, host)
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject))
    return new SocketmapClient(s)
  }

  send(...payloads: string[]): void {
    this.socket.write(Buffer.concat(payloads.map((p) => encodeNetstring(p))))
  }

  sendRaw(bytes: string | Buffer): void {
    this.socket.write(bytes)
  }

  /** The next N replies; rejects if the connection closes first. */
  async read(n = 1, timeoutMs = 5000): Promise<string[]> {
    const end = Date.now() + timeoutMs
    while (this.replies.length < n) {
      if (this.closed) throw new Error(`connection closed after ${this.replies.length} of ${n} replies`)
      if (Date.now() > end) throw new Error(`no reply within ${timeoutMs} ms`)
      await new Promise<void>((r) => {
        this.waiters.push(r)
        setTimeout(r, 50)
      })
    }
    return this.replies.splice(0, n)
  }

  async query(name: string, key: string): Promise<string> {
    this.send(`${name} ${key}`)
    return (await this.read(1))[0]!
  }

  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const end = Date.now() + timeoutMs
    while (!this.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
    return this.closed
  }

  close(): void {
    this.socket.destroy()
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    w.forEach((f) => f())
  }
}
