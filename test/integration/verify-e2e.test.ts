/**
 * End to end (issue 5): a message signed with real GnuPG goes through real
 * Postfix with `linksec serve` as its milter, and through real Haraka with
 * the linksec plugin; it arrives with `x-openpgp=pass`, and a forged copy
 * (body altered after signing) is refused 550 5.7.1. The sender's key is in
 * the local key store; DNS is a loopback test server.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { KeyStore } from '../../core/keys'
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from '../helpers/postfix'
import * as S from '../helpers/signers'
import { isRoot, needTools, which } from '../helpers/tools'

const AUTHSERV = 'mx.linksec.test'
const FROM = 'alice@example.org'

interface Fixture {
  kit: S.SignerKit
  dns: TestDnsServer
  keysDir: string
  good: string
  forged: string
}

async function fixture(): Promise<Fixture> {
  const kit = new S.SignerKit()
  const alice = kit.gpg({ address: FROM, name: 'Alice' })
  const keysDir = kit.scratch('keys')
  await new KeyStore(keysDir).add(alice.publicKey())
  const good = S.pgpMimeMessage(
    alice,
    { from: `Alice <${FROM}>`, subject: 'signed' },
    S.textPart('Pay 10 EUR to Bob.\n', { qp: true }),
  )
  const forged = Buffer.from(
    good.toString('latin1').replace('Pay 10 EUR', 'Pay 99 EUR').replace('Subject: signed', 'Subject: forged'),
    'latin1',
  )
  const dns = await startDnsServer({
    '_linksec.example.org': { TXT: ['v=LINKSEC1; level=3; ttl=3600; sig=required'] },
  })
  return { kit, dns, keysDir, good: good.toString('latin1'), forged: forged.toString('latin1') }
}

function ini(f: Fixture) {
  return {
    main: { authserv_id: AUTHSERV },
    log: { level: 'warn' },
    keys: { dir: f.keysDir, methods: 'local' },
    resolver: { servers: f.dns.address },
  }
}

/**
 * swaks sending a whole message, asynchronously: the test DNS server lives in
 * this process and must keep answering while swaks runs.
 */
async function send(
  port: number,
  data: string,
): Promise<{ status: number | null; transcript: string; dataReply: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-swaks-'))
  const file = path.join(dir, 'message.eml')
  fs.writeFileSync(file, data)
  const args = [
    '--server',
    `127.0.0.1:${port}`,
    '--helo',
    'client.example.test',
    '--from',
    FROM,
    '--to',
    'bob@example.net',
  ]
  const child = spawn('swaks', [...args, '--timeout', '30', '--data', `@${file}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let transcript = ''
  child.stdout.on('data', (b: Buffer) => (transcript += b.toString()))
  child.stderr.on('data', (b: Buffer) => (transcript += b.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve))
  clearTimeout(timer)
  fs.rmSync(dir, { recursive: true, force: true })
  const lines = transcript.split(/\r?\n/)
  const dot = lines.findIndex((l) => /^ [-~]> \.$/.test(l))
  const reply = dot >= 0 ? /^<\S*\s+(\d{3}[ -].*)$/.exec(lines[dot + 1] ?? '') : null
  return { status, transcript, dataReply: reply?.[1] ?? '' }
}

const arOf = (headers: Array<[string, string]>) =>
  headers.filter(([n]) => n.toLowerCase() === 'authentication-results').map(([, v]) => v)

describe('signed mail through Postfix with linksec serve as milter', () => {
  let f: Fixture | undefined
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined
  const tools = { postfix: 'postfix', 'smtp-sink': 'postfix', swaks: 'swaks', gpg: 'gnupg' }

  before(async () => {
    if (!Object.keys(tools).every((t) => which(t)) || !isRoot()) return
    f = await fixture()
    serve = await startLinksecServe({ ini: ini(f) })
    pf = await startPostfix({ milter: serve.milterAddress, milterDefaultAction: 'tempfail' })
  })
  after(async () => {
    await pf?.stop()
    await serve?.stop()
    await f?.dns.close()
    f?.kit.cleanup()
  })

  const ready = (t: Parameters<typeof needTools>[0]) => {
    if (!needTools(t, tools)) return false
    if (!isRoot()) {
      t.skip('postfix-up.sh needs root')
      return false
    }
    assert.ok(pf && serve, 'peers did not start')
    return true
  }

  it('delivers a signed message with x-openpgp=pass and the key fingerprint', async (t) => {
    if (!ready(t)) return
    const before = pf!.sinkMessages().length
    const r = await send(pf!.port, f!.good)
    assert.equal(r.status, 0, r.transcript)
    const msgs = await pf!.waitForSink(before + 1)
    const msg = msgs.find((m) => m.headers.some(([n, v]) => n === 'Subject' && v === 'signed'))!
    const ours = arOf(msg.headers).find((v) => v.includes('x-openpgp'))
    assert.match(
      ours ?? '',
      new RegExp(
        `^${AUTHSERV}; x-openpgp=pass header\\.from=${FROM} body\\.openpgp-fingerprint=[0-9A-F]{40}`,
      ),
    )
    // The signed part reached the sink byte for byte (Postfix and linksec changed nothing in it).
    assert.ok(msg.message.replace(/\r\n/g, '\n').includes('Pay 10 EUR to Bob.'))
  })

  it('refuses the forged copy with 550 5.7.1 naming the sender; nothing reaches the sink', async (t) => {
    if (!ready(t)) return
    const before = pf!.sinkMessages().length
    const r = await send(pf!.port, f!.forged)
    assert.notEqual(r.status, 0)
    assert.match(r.dataReply, /^550 5\.7\.1 .*alice@example\.org.*not valid/, r.transcript)
    assert.equal(pf!.sinkMessages().length, before)
  })

  it('refuses unsigned mail from a domain declaring sig=required', async (t) => {
    if (!ready(t)) return
    const r = await send(pf!.port, S.plainMessage({ from: FROM, subject: 'unsigned' }).toString())
    assert.match(r.dataReply, /^550 5\.7\.1 example\.org declares .*sig=required/, r.transcript)
  })
})

describe('signed mail through Haraka with the linksec plugin', () => {
  let f: Fixture | undefined
  let haraka: HarakaInstance | undefined
  const tools = { swaks: 'swaks', gpg: 'gnupg' }

  before(async () => {
    if (!Object.keys(tools).every((t) => which(t))) return
    f = await fixture()
    haraka = await startHaraka({ linksec: ini(f) })
  })
  after(async () => {
    await haraka?.stop()
    await f?.dns.close()
    f?.kit.cleanup()
  })

  it('queues a signed message with x-openpgp=pass', async (t) => {
    if (!needTools(t, tools)) return
    assert.ok(haraka, 'Haraka did not start')
    const before = haraka.queued().length
    const r = await send(haraka.port, f!.good)
    assert.equal(r.status, 0, r.transcript)
    const q = await haraka.waitForQueued(before + 1)
    // Unfolded (RFC 5322 §2.2.3): linksec folds its fields at 78 columns.
    const raw = q.at(-1)!.raw.replace(/\r\n(?=[ \t])/g, '')
    assert.match(raw, new RegExp(`Authentication-Results: ${AUTHSERV}; x-openpgp=pass header\\.from=${FROM}`))
  })

  it('refuses the forged copy with 550 5.7.1', async (t) => {
    if (!needTools(t, tools)) return
    assert.ok(haraka, 'Haraka did not start')
    const before = haraka.queued().length
    const r = await send(haraka.port, f!.forged)
    assert.match(r.dataReply, /^550 5\.7\.1 .*alice@example\.org/, r.transcript)
    assert.equal(haraka.queued().length, before)
  })
})
