/**
 * A scripted SMTP server on loopback for the failures real servers are hard
 * to make do on cue: a 4xx or 5xx to one RCPT, a reply to the end of DATA,
 * a connection dropped in the middle of DATA. Plain text only (no
 * STARTTLS, so it serves untagged mail): real receivers with TLS are
 * test/helpers/receivers.ts (Haraka) and test/helpers/postfix.ts.
 *
 *   const s = await startScriptedSmtp({ rcpt: (a) => (a.startsWith('busy@') ? '450 4.2.1 try later' : undefined),
 *                                       data: 'drop' })
 *   s.port; s.sessions  // what each connection said and whether a message was accepted
 *   await s.close()
 */
import * as net from 'node:net'

export interface ScriptedSmtpOptions {
  /** The reply to RCPT TO for an address; undefined = 250. */
  rcpt?: (address: string) => string | undefined
  /** After DATA: 'drop' closes the connection once some of the message arrived; a string is the reply to the final dot. */
  data?: 'drop' | `${number} ${string}`
}

export interface ScriptedSession {
  commands: string[]
  /** Bytes of message data received (whether or not it was accepted). */
  dataBytes: number
  /** Whether the message was answered 250 after its final dot. */
  accepted: boolean
}

export interface ScriptedSmtp {
  port: number
  sessions: ScriptedSession[]
  close(): Promise<void>
}

export async function startScriptedSmtp(o: ScriptedSmtpOptions = {}): Promise<ScriptedSmtp> {
  const sessions: ScriptedSession[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    sock.on('error', () => undefined)
    const s: ScriptedSession = { commands: [], dataBytes: 0, accepted: false }
    sessions.push(s)
    let buf = ''
    let inData = false
    let data = ''
    let rcpts = 0
    const say = (line: string) => sock.write(`${line}\r\n`)
    say('220 scripted.test ESMTP test server')
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1')
      for (;;) {
        if (inData) {
          if (buf === '') return
          data += buf
          buf = ''
          s.dataBytes = data.length
          if (o.data === 'drop') {
            sock.destroy()
            return
          }
          const end = data.indexOf('\r\n.\r\n')
          if (end < 0) return
          buf = data.slice(end + 5)
          data = ''
          inData = false
          const reply = typeof o.data === 'string' ? o.data : '250 2.0.0 queued as SCRIPTED'
          s.accepted = reply.startsWith('250')
          say(reply)
          continue
        }
        const nl = buf.indexOf('\r\n')
        if (nl < 0) return
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 2)
        s.commands.push(line)
        const verb = line.slice(0, 4).toUpperCase()
        if (verb === 'EHLO') say('250-scripted.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10000000')
        else if (verb === 'HELO') say('250 scripted.test')
        else if (verb === 'MAIL') {
          rcpts = 0
          say('250 2.1.0 ok')
        } else if (verb === 'RCPT') {
          const addr = /<([^>]*)>/.exec(line)?.[1] ?? ''
          const reply = o.rcpt?.(addr) ?? '250 2.1.5 ok'
          if (reply.startsWith('250')) rcpts++
          say(reply)
        } else if (verb === 'DATA') {
          // As a real server does (RFC 2920 §3.1: a pipelined DATA after every RCPT failed).
          if (rcpts === 0) say('554 5.5.1 no valid recipients')
          else {
            inData = true
            say('354 go ahead')
          }
        } else if (verb === 'RSET' || verb === 'NOOP') say('250 ok')
        else if (verb === 'QUIT') {
          say('221 bye')
          sock.end()
          return
        } else say('502 5.5.2 not implemented')
      }
    })
  })
  await new Promise<void>((ok, fail) => {
    server.once('error', fail)
    server.listen(0, '127.0.0.1', () => ok())
  })
  return {
    port: (server.address() as net.AddressInfo).port,
    sessions,
    close: () =>
      new Promise<void>((ok) => {
        for (const s of sockets) s.destroy()
        server.close(() => ok())
      }),
  }
}
