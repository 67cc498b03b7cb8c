/**
 * `linksec send` when the input or the far end is bad, each ending in one
 * line per recipient and a sysexits code (bin/commands/send.ts), and nothing
 * half-sent silently: recipient servers on loopback scripted to drop the
 * connection mid-DATA or answer 4xx / 5xx at RCPT or after the dot
 * (test/helpers/smtp-script.ts), domains with no MX and no address, a
 * nonexistent domain, an MX on a private address, addresses without a
 * domain and messages that are not messages. MX records come from the test
 * DNS (test/helpers/world.ts) only.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startScriptedSmtp, type ScriptedSmtp } from '../helpers/smtp-script'
import { startWorld, type World } from '../helpers/world'

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')

function send(
  args: string[],
  stdin: string | Buffer,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'send', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => resolve({ code, out, err }))
    child.stdin.on('error', () => undefined)
    child.stdin.end(stdin)
  })
}

const MESSAGE = 'From: alice@sender.test\r\nTo: x@y.test\r\nSubject: hello\r\n\r\nHello.\r\n'

describe('linksec send: bad input and bad servers', () => {
  let world: World
  let picky: ScriptedSmtp
  let dropper: ScriptedSmtp
  let lateNo: ScriptedSmtp
  const base = { log: { level: 'warn' }, keys: { methods: 'wkd' }, policy: { dane: false } }

  before(async () => {
    picky = await startScriptedSmtp({
      rcpt: (a) =>
        a.startsWith('busy@')
          ? '450 4.2.1 mailbox busy, try later'
          : a.startsWith('gone@')
            ? '550 5.1.1 no such user'
            : a.startsWith('policy@')
              ? '554 5.7.1 relay denied'
              : undefined,
    })
    dropper = await startScriptedSmtp({ data: 'drop' })
    lateNo = await startScriptedSmtp({ data: '452 4.3.1 insufficient system storage' })
    world = await startWorld({
      zone: {
        'rcpt.test': { MX: ['10 mx.rcpt.test'] },
        'mx.rcpt.test': { A: ['127.0.0.1'] },
        'drop.test': { MX: ['10 mx.drop.test'] },
        'mx.drop.test': { A: ['127.0.0.1'] },
        'nowhere.test': { TXT: ['v=spf1 -all'] },
        'private.test': { MX: ['10 mx.private.test'] },
        'mx.private.test': { A: ['10.1.2.3'] },
        'nullmx.test': { MX: ['0 .'] },
      },
    })
  })
  after(async () => {
    await Promise.all([picky?.close(), dropper?.close(), lateNo?.close()])
    await world?.close()
  })

  const cfg = (port: number, net: Record<string, boolean> = {}) =>
    world.configIni({
      ...base,
      send: { port, timeout_ms: 5000 },
      ...(Object.keys(net).length ? { net } : {}),
    })

  it('4xx and 5xx at RCPT: each recipient its own line; the accepted one is sent; exit 75 before 69 before 67', async () => {
    const before = picky.sessions.length
    const r = await send(
      [
        '-f',
        'alice@sender.test',
        '--config',
        cfg(picky.port),
        'ok@rcpt.test',
        'busy@rcpt.test',
        'gone@rcpt.test',
        'policy@rcpt.test',
      ],
      MESSAGE,
    )
    assert.equal(r.code, 75, r.out + r.err)
    assert.match(
      r.out,
      /^ok@rcpt\.test: sent to mx\.rcpt\.test \[127\.0\.0\.1\]:\d+ without TLS \(unsigned\): 250 2\.0\.0 queued/m,
    )
    assert.match(
      r.err,
      /^busy@rcpt\.test: not sent: mx\.rcpt\.test \[127\.0\.0\.1\]:\d+ answered 450 4\.2\.1 mailbox busy, try later$/m,
    )
    assert.match(r.err, /^gone@rcpt\.test: not sent: .* answered 550 5\.1\.1 no such user$/m)
    assert.match(r.err, /^policy@rcpt\.test: not sent: .* answered 554 5\.7\.1 relay denied$/m)
    assert.equal(picky.sessions.length, before + 1)
    assert.equal(picky.sessions.at(-1)!.accepted, true)
    // Without the 4xx, the 5xx decide: 69 (a 554), then 67 (a 550 5.1.1 alone).
    const perm = await send(
      [
        '-f',
        'a@sender.test',
        '--config',
        cfg(picky.port),
        'ok@rcpt.test',
        'policy@rcpt.test',
        'gone@rcpt.test',
      ],
      MESSAGE,
    )
    assert.equal(perm.code, 69, perm.err)
    const nouser = await send(
      ['-f', 'a@sender.test', '--config', cfg(picky.port), 'ok@rcpt.test', 'gone@rcpt.test'],
      MESSAGE,
    )
    assert.equal(nouser.code, 67, nouser.err)
  })

  it('[send] log_file: one JSON decision line per recipient (verdict, reason, exit, the line); a bad message one line', async () => {
    const dir = world.configIni({
      ...base,
      send: { port: picky.port, timeout_ms: 5000, log_file: 'send.log' },
    })
    await send(
      [
        '-f',
        'alice@sender.test',
        '--config',
        dir,
        'ok@rcpt.test',
        'busy@rcpt.test',
        'gone@rcpt.test',
        'nodomain',
      ],
      MESSAGE,
    )
    await send(['-f', 'alice@sender.test', '--config', dir, 'ok@rcpt.test'], 'not a message\n')
    const lines = fs
      .readFileSync(path.join(dir, 'send.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    const by = (rcpt: string) => lines.find((l) => l.rcpt === rcpt)!
    assert.equal(lines.length, 5)
    assert.ok(
      lines.every((l) => l.msg === 'decision' && l.adapter === 'send' && l.sender_domain === 'sender.test'),
    )
    assert.deepEqual(
      [by('ok@rcpt.test').verdict, by('ok@rcpt.test').reason, by('ok@rcpt.test').exit],
      ['accept', 'sent', 0],
    )
    assert.deepEqual(
      [by('busy@rcpt.test').verdict, by('busy@rcpt.test').reason, by('busy@rcpt.test').exit],
      ['tempfail', 'temporary', 75],
    )
    assert.deepEqual(
      [by('gone@rcpt.test').verdict, by('gone@rcpt.test').reason],
      ['reject', 'no_such_address'],
    )
    assert.match(String(by('gone@rcpt.test').detail), /550 5\.1\.1 no such user/)
    assert.equal(by('nodomain').exit, 67)
    const bad = lines.at(-1)!
    assert.deepEqual([bad.verdict, bad.reason, bad.exit, bad.rcpt], ['reject', 'bad_message', 65, undefined])
  })

  it('every recipient refused at RCPT: each still gets its own line and code; no message data is sent', async () => {
    const before = picky.sessions.length
    const r = await send(
      ['-f', 'a@sender.test', '--config', cfg(picky.port), 'busy@rcpt.test', 'gone@rcpt.test'],
      MESSAGE,
    )
    assert.equal(r.code, 75, r.err)
    assert.equal(r.out, '')
    assert.match(r.err, /^busy@rcpt\.test: not sent: .*450 4\.2\.1 mailbox busy/m)
    assert.match(r.err, /^gone@rcpt\.test: not sent: .*550 5\.1\.1 no such user/m)
    // DATA may be pipelined (RFC 2920); the server refuses it, and no message byte goes out.
    const s = picky.sessions[before]!
    assert.equal(s.dataBytes, 0, s.commands.join(' | '))
    assert.equal(s.accepted, false)
  })

  it('the connection dropped in the middle of DATA: 75 with the reason, not reported sent', async () => {
    const r = await send(['-f', 'a@sender.test', '--config', cfg(dropper.port), 'bob@drop.test'], MESSAGE)
    assert.equal(r.code, 75, r.out + r.err)
    assert.equal(r.out, '')
    assert.match(
      r.err,
      /^bob@drop\.test: not sent: mx\.drop\.test \[127\.0\.0\.1\]:\d+: .*(closed|ECONNRESET|Connection)/im,
    )
    const s = dropper.sessions.at(-1)!
    assert.ok(s.dataBytes > 0, 'the server got part of the message')
    assert.equal(s.accepted, false)
  })

  it('a 452 after the final dot: 75 for every recipient of that transaction', async () => {
    const r = await send(
      ['-f', 'a@sender.test', '--config', cfg(lateNo.port), 'a@rcpt.test', 'b@rcpt.test'],
      MESSAGE,
    )
    assert.equal(r.code, 75, r.out + r.err)
    assert.equal(r.out, '')
    assert.match(r.err, /^a@rcpt\.test: not sent: .*452 4\.3\.1 insufficient system storage/m)
    assert.match(r.err, /^b@rcpt\.test: not sent: .*452 4\.3\.1/m)
  })

  it('no MX and no address, no such domain, a null MX: 69, the reason named; other recipients still served', async () => {
    const r = await send(
      [
        '-f',
        'a@sender.test',
        '--config',
        cfg(picky.port),
        'x@nowhere.test',
        'y@missing.test',
        'z@nullmx.test',
        'ok@rcpt.test',
      ],
      MESSAGE,
    )
    assert.equal(r.code, 69, r.out + r.err)
    assert.match(r.err, /^x@nowhere\.test: not sent: nowhere\.test has no MX and no address record$/m)
    assert.match(r.err, /^y@missing\.test: not sent: the domain missing\.test does not exist \(NXDOMAIN\)$/m)
    assert.match(r.err, /^z@nullmx\.test: not sent: nullmx\.test publishes a null MX/m)
    assert.match(r.out, /^ok@rcpt\.test: sent to /m)
  })

  it('an MX on a private address is refused unless [net] allow_private_addresses', async () => {
    const r = await send(
      [
        '-f',
        'a@sender.test',
        '--config',
        cfg(picky.port, { allow_private_addresses: false }),
        'bob@private.test',
      ],
      MESSAGE,
    )
    assert.equal(r.code, 69, r.out + r.err)
    assert.match(
      r.err,
      /^bob@private\.test: not sent: the mail servers of private\.test are on private addresses \(mx\.private\.test \[10\.1\.2\.3\]\); set \[net\] allow_private_addresses=true to deliver there$/m,
    )
  })

  it('--requiretls to a server that cannot offer REQUIRETLS (no STARTTLS): 69, the hop named, no MAIL FROM sent', async () => {
    const before = picky.sessions.length
    const r = await send(
      ['-f', 'a@sender.test', '--requiretls', '--config', cfg(picky.port), 'ok@rcpt.test'],
      MESSAGE,
    )
    assert.equal(r.code, 69, r.out + r.err)
    assert.match(
      r.err,
      /^ok@rcpt\.test: not sent: mx\.rcpt\.test \[127\.0\.0\.1\]:\d+: this message \(REQUIRETLS\) was not sent: the receiving server .* does not offer STARTTLS/m,
    )
    assert.equal(r.out, '')
    const tried = picky.sessions.slice(before)
    assert.ok(tried.length >= 1)
    for (const s of tried) {
      assert.ok(!s.commands.some((c) => /^(MAIL|RCPT|DATA)\b/i.test(c)), s.commands.join(' | '))
      assert.equal(s.dataBytes, 0)
    }
    // Without the flag the same message goes out in plain text (it is untagged).
    const plain = await send(['-f', 'a@sender.test', '--config', cfg(picky.port), 'ok@rcpt.test'], MESSAGE)
    assert.equal(plain.code, 0, plain.err)
  })

  it('addresses without a domain: 67 each, named; the good one is still sent', async () => {
    const r = await send(
      ['-f', 'a@sender.test', '--config', cfg(picky.port), 'bob', 'carol@', '@rcpt.test', 'ok@rcpt.test'],
      MESSAGE,
    )
    assert.equal(r.code, 67, r.out + r.err)
    assert.match(r.err, /^bob: not sent: "bob" has no @domain/m)
    assert.match(r.err, /^carol@: not sent: /m)
    assert.match(r.err, /^@rcpt\.test: not sent: /m)
    assert.match(r.out, /^ok@rcpt\.test: sent/m)
  })

  it('a message that is not one (no header, a broken header line, NUL, an over-long line, empty): 65, nothing sent', async () => {
    const before = picky.sessions.length
    const cases: [string | Buffer, RegExp][] = [
      [
        'just some text\nno header at all\n',
        /does not start with header fields \(RFC 5322 §2\.2\): line 1 is "just some text"/,
      ],
      [
        'From alice@sender.test Fri Dec  4 10:00:00 2026\nSubject: x\n\nbody\n',
        /an mbox "From " line: remove it/,
      ],
      [
        'From: a@sender.test\nSubject: x\nthis line is no field\n\nbody\n',
        /line 3 of the header is not a header field/,
      ],
      [Buffer.from('From: a@sender.test\nSubject: x\n\nbin\u0000ary\n', 'latin1'), /NUL byte at offset/],
      [`From: a@sender.test\nSubject: x\n\n${'y'.repeat(1200)}\n`, /line 4 is 1200 octets long/],
      ['\nbody only\n', /starts with an empty line/],
    ]
    for (const [input, re] of cases) {
      const r = await send(['-f', 'a@sender.test', '--config', cfg(picky.port), 'ok@rcpt.test'], input)
      assert.equal(r.code, 65, `${JSON.stringify(String(input).slice(0, 30))}: ${r.out}${r.err}`)
      assert.match(r.err, /linksec send: not sent to anyone: /)
      assert.match(r.err, re)
      assert.equal(r.out, '')
    }
    const empty = await send(['-f', 'a@sender.test', '--config', cfg(picky.port), 'ok@rcpt.test'], '')
    assert.equal(empty.code, 65)
    assert.match(empty.err, /no message on standard input/)
    assert.equal(picky.sessions.length, before, 'no connection was made for any of them')
  })
})
