/**
 * Whole milter sessions against a running in-process `linksec serve`
 * milter (the default app: inbound link, route, verify): negotiation,
 * hostile macros, CONNECT/HELO/MAIL/RCPT, generated MIME with OpenPGP
 * signature blocks (garbage armor, random packets, NULs and control bytes in
 * the protected From, long values), the body in random chunks, end of
 * message; all bytes written in random splits, sometimes with a frame
 * mangled. Each input seeds the generator, so the runner's mutations give
 * new sessions. Checked per session: the session ends in a reply or a clean
 * close (after a final QUIT it must close), every reply decodes, and nothing
 * escapes to the process (uncaughtException / unhandledRejection).
 */
import * as crypto from 'node:crypto'
import * as net from 'node:net'
import { PACKAGE_CONFIG_DIR, parseConfig } from '../../../core/config'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime } from '../../../core/runtime'
import type { Service } from '../../../core/service'
import { startMilterService } from '../../../milter/server'
import { ALL_ACTIONS, ALL_PROTOCOL_FLAGS, Cmd } from '../../../milter/wire/codes'
import { ResponseDecoder } from '../../../milter/wire/decode'
import { encodeCommand } from '../../../milter/wire/encode'
import type { MacroPairs, MilterCommand, MilterResponse } from '../../../milter/wire/types'
import type { FuzzTarget } from '../run'

/** Offline (see milter-codec.ts): DNS to a dead loopback port, local keys only. */
const OFFLINE = {
  resolver: { servers: '127.0.0.1:9', timeout_ms: '200' },
  policy: { txt: 'false', mta_sts: 'false', dane: 'false' },
  keys: { methods: 'local' },
  milter: { negotiation_timeout_ms: '2000', frame_timeout_ms: '2000', max_held_bytes: String(32 << 20) },
}

class SessionHung extends Error {}

let service: Promise<Service> | undefined
const escaped: unknown[] = []

function milter(): Promise<Service> {
  service ??= (() => {
    process.on('uncaughtException', (e) => escaped.push(e))
    process.on('unhandledRejection', (e) => escaped.push(e))
    const rt = createRuntime(parseConfig(OFFLINE, PACKAGE_CONFIG_DIR), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    return startMilterService(rt, { listen: 'inet:127.0.0.1:0' })
  })()
  return service
}

/** A small deterministic generator seeded from the input. */
class Rand {
  private s: number
  constructor(seed: Buffer) {
    this.s = crypto.createHash('sha256').update(seed).digest().readUInt32LE(0) || 1
  }
  next(): number {
    // xorshift32
    this.s ^= this.s << 13
    this.s ^= this.s >>> 17
    this.s ^= this.s << 5
    return (this.s >>> 0) / 0x100000000
  }
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!
  }
  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)))
  }
}

const HOSTILE = ['\x1b[31m', '\x07', '\r', '\n', '\0', '%', '%s', '\u00e9', '"', '\\', '(a(b)c)', ';', '\x7f']

function hostileText(r: Rand, base: string): string {
  let s = base
  for (let i = r.int(4); i > 0; i--) s += r.pick(HOSTILE) + base.slice(0, r.int(base.length + 1))
  if (r.chance(0.05)) s += 'x'.repeat(r.int(70_000))
  return s
}

/** A value the wire can carry (a NUL would end the C string early). */
const wire = (s: string) => s.replace(/\0/g, '')

function macros(r: Rand): MilterCommand[] {
  const out: MilterCommand[] = []
  for (let i = r.int(4); i > 0; i--) {
    const command = r.chance(0.7) ? r.pick([Cmd.connect, Cmd.helo, Cmd.mail, Cmd.rcpt, Cmd.data]) : r.int(256)
    const pairs: MacroPairs = Array.from({ length: r.int(5) }, () => [
      wire(
        r.pick(['{tls_version}', '{cipher}', '{cipher_bits}', 'i', '{auth_authen}', 'j', `{m${r.int(99)}}`]),
      ),
      wire(hostileText(r, r.pick(['TLSv1.3', '256', 'Q1', 'x']))),
    ])
    out.push({ type: 'macro', command, macros: pairs })
  }
  return out
}

function signatureBlock(r: Rand): string {
  const kind = r.int(4)
  const packet =
    kind === 0
      ? r.bytes(r.int(300))
      : // An old-format signature packet header (tag 2) and random contents.
        Buffer.concat([
          Buffer.from([0x88 | r.int(4), r.int(256)]),
          Buffer.from([4, 0, 22, 8]),
          r.bytes(r.int(200)),
        ])
  const b64 = kind === 3 ? hostileText(r, 'AAAA') : packet.toString('base64').replace(/(.{64})/g, '$1\r\n')
  return `-----BEGIN PGP SIGNATURE-----\r\n\r\n${b64}\r\n-----END PGP SIGNATURE-----\r\n`
}

function message(r: Rand): { headers: Array<[string, string]>; body: Buffer } {
  const from = r.chance(0.8)
    ? '<alice@sender.test>'
    : hostileText(r, '<alice@sender.test> <eve@attacker.test>')
  const boundary = r.chance(0.9) ? 'b1' : hostileText(r, 'b')
  const inner = `Content-Type: text/plain\r\nFrom: ${hostileText(r, from)}\r\n\r\nhello${hostileText(r, ' ')}\r\n`
  const signed = r.chance(0.8)
  const body = signed
    ? `--${boundary}\r\n${inner}\r\n--${boundary}\r\nContent-Type: application/pgp-signature\r\n\r\n${Array.from(
        { length: 1 + r.int(3) },
        () => signatureBlock(r),
      ).join('')}\r\n--${boundary}--\r\n`
    : inner
  const headers: Array<[string, string]> = [
    ['From', wire(from)],
    ['To', '<bob@example.net>'],
    ['Subject', wire(hostileText(r, 'fuzz'))],
  ]
  if (signed)
    headers.push([
      'Content-Type',
      wire(
        `multipart/signed; boundary="${boundary}"; protocol="application/pgp-signature"; micalg=pgp-sha256`,
      ),
    ])
  if (r.chance(0.3)) headers.push(['Link-Security-Required', r.pick(['1', '2', '3', '4', 'x'])])
  if (r.chance(0.3))
    headers.push(['Authentication-Results', wire(hostileText(r, 'mx.example.net; x-openpgp=pass'))])
  for (let i = r.chance(0.1) ? r.int(300) : 0; i > 0; i--) headers.push([`X-F${i}`, 'v'.repeat(r.int(200))])
  return { headers, body: Buffer.from(body, r.chance(0.5) ? 'utf8' : 'latin1') }
}

function session(r: Rand): Buffer {
  const m = message(r)
  const cmds: MilterCommand[] = [
    {
      type: 'optneg',
      version: r.chance(0.9) ? 6 : r.int(8),
      actions: r.chance(0.8) ? ALL_ACTIONS : r.int(0x200),
      protocol: r.chance(0.8) ? ALL_PROTOCOL_FLAGS : r.int(0x200000),
    },
    ...macros(r),
    {
      type: 'connect',
      host: wire(hostileText(r, 'client.test')),
      family: 'inet4',
      port: 40000,
      address: '192.0.2.1',
    },
    ...macros(r),
    { type: 'helo', name: wire(hostileText(r, 'client.test')) },
    ...macros(r),
    { type: 'mail', args: ['<alice@sender.test>', ...(r.chance(0.2) ? ['REQUIRETLS'] : [])] },
    { type: 'rcpt', args: ['<bob@example.net>'] },
    { type: 'data' },
    ...m.headers.map(([name, value]): MilterCommand => ({ type: 'header', name, value })),
    { type: 'eoh' },
  ]
  for (let at = 0; at < m.body.length;) {
    const n = 1 + r.int(r.chance(0.5) ? 65535 : 64)
    cmds.push({ type: 'body', chunk: m.body.subarray(at, at + n) })
    at += n
  }
  cmds.push({ type: 'endOfMessage', chunk: Buffer.alloc(0) })
  const frames = cmds.map(encodeCommand)
  // Now and then a mangled frame, like the codec target's inputs.
  if (r.chance(0.1)) {
    const f = frames[r.int(frames.length)]!
    if (f.length) f[r.int(f.length)] = r.int(256)
  }
  return Buffer.concat(frames)
}

/** Writes in random splits; resolves with the responses once the connection ends, failing if it hangs. */
async function drive(port: number, bytes: Buffer, r: Rand): Promise<MilterResponse[]> {
  const socket = net.connect(port, '127.0.0.1')
  const decoder = new ResponseDecoder(16 << 20)
  const got: MilterResponse[] = []
  let decodeError: Error | undefined
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => {})
  socket.on('data', (d: Buffer) => {
    try {
      got.push(...decoder.push(d))
    } catch (e) {
      decodeError ??= e instanceof Error ? e : new Error(String(e))
    }
  })
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  for (let at = 0; at < bytes.length && !socket.destroyed;) {
    const n = 1 + r.int(r.chance(0.3) ? 16 : 70_000)
    socket.write(bytes.subarray(at, at + n))
    at += n
    if (r.chance(0.05)) await new Promise((res) => setImmediate(res))
  }
  // Every session ends: the milter answers and closes on QUIT, or has closed already.
  const answered = await Promise.race([closed.then(() => true), waitUntil(() => got.some(isFinal), 20_000)])
  if (!socket.destroyed) socket.write(encodeCommand({ type: 'quit' }))
  const done = await Promise.race([closed.then(() => true), sleep(20_000).then(() => false)])
  socket.destroy()
  if (decodeError) throw decodeError
  if (!done) throw new SessionHung(`no reply and no close within 20 s (answered: ${answered})`)
  return got
}

const isFinal = (m: MilterResponse) =>
  ['replyCode', 'continue', 'accept', 'tempfail', 'reject', 'discard'].includes(m.type)
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

async function waitUntil(test: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!test()) {
    if (Date.now() > end) return false
    await sleep(5)
  }
  return true
}

/** One generated session against the in-process milter; its responses (tests look at them). */
export async function runSession(input: Buffer): Promise<MilterResponse[]> {
  const svc = await milter()
  const port = Number(svc.address.split(':').at(-1))
  const r = new Rand(input)
  const got = await drive(port, session(r), r)
  if (escaped.length) throw new Error(`an error escaped to the process: ${String(escaped.splice(0)[0])}`)
  return got
}

export const target: FuzzTarget = {
  name: 'milter-session',
  seeds: () => [Buffer.from('seed-a'), Buffer.from('seed-b'), Buffer.from('signed'), Buffer.from('flood')],
  async fuzzOne(input) {
    await runSession(input)
  },
  isExpectedError: () => false,
  async close() {
    if (service) await (await service).close(0)
  },
}
