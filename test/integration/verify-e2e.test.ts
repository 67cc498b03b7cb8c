/**
 * End to end (issue 5): a message signed with real GnuPG goes through real
 * Postfix with `linksec serve` as its milter, and through real Haraka with
 * the linksec plugin; it arrives with `x-openpgp=pass`, and a forged copy
 * (body altered after signing) is refused 550 5.7.1. The sender's key is in
 * the local key store; DNS is a loopback test server.
 *
 * With `[verify] on_fail=quarantine` the forged copy, carrying a forged
 * Authentication-Results field in our name, is kept aside instead: Postfix
 * puts it on hold (SMFIR_QUARANTINE), Haraka's queue/quarantine plugin writes
 * it to its quarantine directory; either way it carries our field with
 * x-openpgp=fail and no longer the forged one.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { KeyStore } from '../../core/keys'
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server'
import { startHaraka, type HarakaInstance } from '../helpers/haraka'
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from '../helpers/postfix'
import * as S from '../helpers/signers'
import { isRoot, needTools, which, needRoot } from '../helpers/tools'

const AUTHSERV = 'mx.linksec.test'
const FROM = 'alice@example.org'

interface Fixture {
  kit: S.SignerKit
  dns: TestDnsServer
  keysDir: string
  good: string
  forged: string
  /** The forged copy with an incoming A-R field claiming our authserv-id and a pass. */
  forgedWithAr: string
}

const FORGED_AR = `Authentication-Results: ${AUTHSERV}; x-openpgp=pass header.from=${FROM}`

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
  const forgedWithAr = `${FORGED_AR}\r\n${forged.toString('latin1').replace('Subject: forged', 'Subject: quarantined')}`
  return { kit, dns, keysDir, good: good.toString('latin1'), forged: forged.toString('latin1'), forgedWithAr }
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
    if (!needRoot(t, 'postfix-up.sh needs root')) return false
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

/** Our x-openpgp=fail field is there, and no field (A-R or Haraka's Original-A-R) still says pass in our name. */
function assertQuarantinedHeaders(raw: string): void {
  const head = raw
    .replace(/\r\n/g, '\n')
    .split('\n\n')[0]!
    .replace(/\n[ \t]+/g, ' ')
  const fields = head.split('\n')
  const ours = fields.filter((l) => l.startsWith(`Authentication-Results: ${AUTHSERV}; x-openpgp=`))
  assert.equal(ours.length, 1, head)
  assert.match(ours[0]!, new RegExp(`x-openpgp=fail .*header\\.from=${FROM}`))
  assert.ok(!fields.some((l) => /authentication-results:/i.test(l) && l.includes('x-openpgp=pass')), head)
}

describe('quarantine through Postfix: SMFIR_QUARANTINE puts the forged copy on hold', () => {
  let f: Fixture | undefined
  let serve: ServeInstance | undefined
  let pf: PostfixInstance | undefined
  const tools = {
    postfix: 'postfix',
    'smtp-sink': 'postfix',
    postqueue: 'postfix',
    swaks: 'swaks',
    gpg: 'gnupg',
  }

  before(async () => {
    if (!Object.keys(tools).every((t) => which(t)) || !isRoot()) return
    f = await fixture()
    serve = await startLinksecServe({ ini: { ...ini(f), verify: { on_fail: 'quarantine' } } })
    pf = await startPostfix({ milter: serve.milterAddress, milterDefaultAction: 'tempfail' })
  })
  after(async () => {
    await pf?.stop()
    await serve?.stop()
    await f?.dns.close()
    f?.kit.cleanup()
  })

  it('accepts the forged copy, holds it, and the held message carries our fail and not the forged pass', async (t) => {
    if (!needTools(t, tools)) return
    if (!needRoot(t, 'postfix-up.sh needs root')) return
    assert.ok(pf && serve, 'peers did not start')
    const before = pf.sinkMessages().length
    const r = await send(pf.port, f!.forgedWithAr)
    assert.match(r.dataReply, /^250 /, r.transcript)
    const held = await waitForHeld(pf.conf)
    assert.equal(held.length, 1, JSON.stringify(held))
    assert.match(pf.maillog(), new RegExp(`${held[0]!.queue_id}: milter-hold: END-OF-MESSAGE from`))
    const content = spawnSync('postcat', ['-c', pf.conf, '-h', '-q', held[0]!.queue_id], {
      encoding: 'latin1',
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
    })
    assert.equal(content.status, 0, content.stderr)
    assertQuarantinedHeaders(content.stdout)
    assert.equal(pf.sinkMessages().length, before, 'nothing delivered')
  })
})

/** `postqueue -j` entries in the hold queue, waited for (bounded): cleanup writes the file, then reports it. */
async function waitForHeld(conf: string): Promise<Array<{ queue_id: string; queue_name: string }>> {
  for (let i = 0; i < 100; i++) {
    const q = spawnSync('postqueue', ['-c', conf, '-j'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
    })
    const held = q.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { queue_id: string; queue_name: string })
      .filter((e) => e.queue_name === 'hold')
    if (held.length > 0) return held
    await new Promise((r) => setTimeout(r, 100))
  }
  return []
}

describe("quarantine through Haraka: the forged copy lands in queue/quarantine's directory", () => {
  let f: Fixture | undefined
  let haraka: HarakaInstance | undefined
  let qdir = ''
  const tools = { swaks: 'swaks', gpg: 'gnupg' }

  before(async () => {
    if (!Object.keys(tools).every((t) => which(t))) return
    f = await fixture()
    qdir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-quarantine-'))
    fs.mkdirSync(path.join(qdir, 'tmp'))
    haraka = await startHaraka({
      linksec: { ...ini(f), verify: { on_fail: 'quarantine' } },
      plugins: ['tls', 'linksec', 'queue/quarantine', 'test_sink'],
      config: { 'quarantine.ini': `[main]\nquarantine_path=${qdir}\n` },
    })
  })
  after(async () => {
    await haraka?.stop()
    await f?.dns.close()
    f?.kit.cleanup()
    if (qdir) fs.rmSync(qdir, { recursive: true, force: true })
  })

  it('accepts it, writes it under quarantine_path/YYYYMMDD/<uuid>, and does not deliver it', async (t) => {
    if (!needTools(t, tools)) return
    assert.ok(haraka, 'Haraka did not start')
    const before = haraka.queued().length
    const r = await send(haraka.port, f!.forgedWithAr)
    assert.match(r.dataReply, /^250 /, r.transcript)
    const file = await waitForFile(qdir)
    assert.match(path.relative(qdir, file), /^\d{8}\/[0-9A-F-]+(\.\d+)?$/i)
    assertQuarantinedHeaders(fs.readFileSync(file, 'latin1'))
    assert.equal(haraka.queued().length, before, 'the sink (delivery) never saw it')
  })
})

/** The first file below DIR/YYYYMMDD (bounded wait). */
async function waitForFile(dir: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    for (const d of fs.readdirSync(dir).filter((n) => /^\d{8}$/.test(n))) {
      const files = fs.readdirSync(path.join(dir, d))
      if (files.length > 0) return path.join(dir, d, files[0]!)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`nothing quarantined under ${dir}`)
}
