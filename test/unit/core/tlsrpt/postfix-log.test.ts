/**
 * The Postfix log reader (core/tlsrpt/postfix-log.ts) on lines recorded from
 * the private Postfix 3.7.11 of test/integration/tlsrpt-postfix.test.ts
 * (queue ids, pids and addresses as logged), variants Postfix writes in
 * other situations, and hostile or broken lines: never a throw, never a
 * count from garbage.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { sessionResult } from '../../../../core/tlsrpt/outcome'
import {
  followLog,
  MAX_LINE,
  PostfixLogParser,
  type PostfixSession,
} from '../../../../core/tlsrpt/postfix-log'

/** Recorded: MTA-STS enforce (secure) to a self-signed receiver, one retry. */
const SELF_SIGNED = `
Dec 04 19:07:07 mta postfix/qmgr[20292]: BD37320C190: from=<alice@sender.test>, size=568, nrcpt=1 (queue active)
Dec 04 19:07:07 mta postfix/smtp[20304]: certificate verification failed for tls.test[127.59.102.2]:45015: self-signed certificate
Dec 04 19:07:07 mta postfix/smtp[20304]: Untrusted TLS connection established to tls.test[127.59.102.2]:45015: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Dec 04 19:07:07 mta postfix/smtp[20304]: BD37320C190: to=<bob@tls.test>, relay=tls.test[127.59.102.2]:45015, delay=4.2, delays=4.2/0/0.01/0, dsn=4.7.5, status=deferred (Server certificate not verified)
Dec 04 19:07:08 mta postfix/smtp[20304]: certificate verification failed for tls.test[127.59.102.2]:45015: self-signed certificate
Dec 04 19:07:08 mta postfix/smtp[20304]: Untrusted TLS connection established to tls.test[127.59.102.2]:45015: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Dec 04 19:07:08 mta postfix/smtp[20304]: BD37320C190: to=<bob@tls.test>, relay=tls.test[127.59.102.2]:45015, delay=5.2, delays=5.2/0/0.01/0, dsn=4.7.5, status=deferred (Server certificate not verified)
`

/** Recorded: MTA-STS enforce to a receiver without STARTTLS. */
const NO_STARTTLS = `
Dec 04 19:07:07 mta postfix/smtp[20306]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.59.102.1]:45015, delay=4.3, delays=4.3/0/0.01/0, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host plain.test[127.59.102.1])
Dec 04 19:07:08 mta postfix/smtp[20306]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.59.102.1]:45015, delay=5.3, delays=5.3/0/0/0, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host plain.test[127.59.102.1])
`

/** Recorded: a test-CA certificate at level encrypt; then a plaintext bounce at may (not counted). */
const TRUSTED_AND_PLAIN = `
Dec 04 19:08:31 mta postfix/smtpd[23086]: Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Dec 04 19:08:31 mta postfix/smtp[23091]: Trusted TLS connection established to level4.test[127.233.27.3]:37779: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Dec 04 19:08:31 mta postfix/smtp[23091]: 297EC20C273: to=<bob@level4.test>, relay=level4.test[127.233.27.3]:37779, delay=0.16, delays=0.02/0/0.07/0.07, dsn=2.0.0, status=sent (250 queued by test_sink C502E745-46AC-4D0E-B691-13D9F22ADEA9.1 (C502E745-46AC-4D0E-B691-13D9F22ADEA9.1))
Dec 04 19:08:40 mta postfix/smtp[23130]: 83EE220C043: to=<alice@sender.test>, relay=sender.test[127.233.27.4]:37779, delay=0.07, delays=0.01/0/0.01/0.05, dsn=2.0.0, status=sent (250 queued by test_sink 383BA2F4-BF50-4571-8F82-EE87C35B7B48.1 (383BA2F4-BF50-4571-8F82-EE87C35B7B48.1))
`

function feedAll(text: string, parser = new PostfixLogParser()): PostfixSession[] {
  return text.split('\n').flatMap((l) => parser.feed(l))
}

const brief = (s: PostfixSession, policy: 'sts' | 'no-policy-found' = 'sts') => ({
  domain: s.domain,
  mx: s.mxHost,
  ip: s.ip,
  result: sessionResult(s, policy),
  reason: s.certError ?? s.tlsError,
})

describe('Postfix 3.7 log lines -> TLS sessions (RFC 8460 result types)', () => {
  it('a self-signed certificate under MTA-STS: one certificate-not-trusted session per attempt, with the reason', () => {
    assert.deepEqual(feedAll(SELF_SIGNED).map((s) => brief(s)), [
      { domain: 'tls.test', mx: 'tls.test', ip: '127.59.102.2', result: 'certificate-not-trusted', reason: 'self-signed certificate' },
      { domain: 'tls.test', mx: 'tls.test', ip: '127.59.102.2', result: 'certificate-not-trusted', reason: 'self-signed certificate' },
    ]) // prettier-ignore
  })

  it('no STARTTLS where TLS is required: starttls-not-supported per attempt', () => {
    const got = feedAll(NO_STARTTLS)
    assert.deepEqual(
      got.map((s) => [s.domain, sessionResult(s, 'sts')]),
      [
        ['plain.test', 'starttls-not-supported'],
        ['plain.test', 'starttls-not-supported'],
      ],
    )
  })

  it('two recipients of one message are one session; the same recipient again is the next attempt', () => {
    const line = (to: string) =>
      `Dec 04 19:07:07 mta postfix/smtp[20306]: AE1D620C18E: to=<${to}>, relay=plain.test[127.59.102.1]:45015, delay=4.3, delays=4.3/0/0.01/0, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host plain.test[127.59.102.1])`
    const parser = new PostfixLogParser()
    const counts = ['a@plain.test', 'b@plain.test', 'a@plain.test', 'b@plain.test'].map(
      (to) => parser.feed(line(to)).length,
    )
    assert.deepEqual(counts, [1, 0, 1, 0])
  })

  it('TLS delivered: one success; inbound (smtpd) TLS and plaintext deliveries are not counted', () => {
    const got = feedAll(TRUSTED_AND_PLAIN)
    assert.deepEqual(
      got.map((s) => brief(s, 'no-policy-found')),
      [
        {
          domain: 'level4.test',
          mx: 'level4.test',
          ip: '127.233.27.3',
          result: 'success',
          reason: undefined,
        },
      ],
    )
    // Trusted is not Verified: under an MTA-STS policy the same facts would not be a success.
    assert.equal(got[0]!.certVerified, false)
  })

  it('below level verify (an MTA-STS policy in mode testing, not enforced): Untrusted and Anonymous are sts failures, Trusted is not counted under sts', () => {
    const lines = `
Dec  4 10:00:00 mx postfix/smtp[81]: Untrusted TLS connection established to mx1.testing.test[192.0.2.8]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
Dec  4 10:00:01 mx postfix/smtp[81]: 1A2B3C4D5E: to=<a@testing.test>, relay=mx1.testing.test[192.0.2.8]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Dec  4 10:00:02 mx postfix/smtp[82]: Anonymous TLS connection established to mx2.testing.test[192.0.2.9]:25: TLSv1.2 with cipher ADH-AES256-GCM-SHA384 (256/256 bits)
Dec  4 10:00:03 mx postfix/smtp[82]: 2B3C4D5E6F: to=<b@testing.test>, relay=mx2.testing.test[192.0.2.9]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Dec  4 10:00:04 mx postfix/smtp[83]: Trusted TLS connection established to mx3.testing.test[192.0.2.10]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
Dec  4 10:00:05 mx postfix/smtp[83]: 3C4D5E6F7A: to=<c@testing.test>, relay=mx3.testing.test[192.0.2.10]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)`
    const got = feedAll(lines)
    assert.equal(got.length, 3, 'each delivered: three sessions seen')
    assert.deepEqual(
      got.map((s) => [s.mxHost, sessionResult(s, 'sts')]),
      [
        ['mx1.testing.test', 'certificate-not-trusted'],
        ['mx2.testing.test', 'validation-failure'],
        // The chain verified, the name was not checked: under sts the result is unknown, never guessed.
        ['mx3.testing.test', undefined],
      ],
    )
    // Without a policy all three are encrypted sessions: successes, as before.
    assert.deepEqual(
      got.map((s) => sessionResult(s, 'no-policy-found')),
      ['success', 'success', 'success'],
    )
  })

  it('Verified, a named transport (syslog_name with a slash), several recipients and a cached connection: one session', () => {
    const lines = `
Dec  4 10:00:00 mx postfix/linksec-secure/smtp[77]: Verified TLS connection established to mx.example.net[192.0.2.7]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
Dec  4 10:00:01 mx postfix/linksec-secure/smtp[77]: 4A1B2C3D4E: to=<a@example.net>, relay=mx.example.net[192.0.2.7]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Dec  4 10:00:01 mx postfix/linksec-secure/smtp[77]: 4A1B2C3D4E: to=<b@example.net>, orig_to=<b@old.example>, relay=mx.example.net[192.0.2.7]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Dec  4 10:00:02 mx postfix/linksec-secure/smtp[77]: 5B2C3D4E5F: to=<c@example.net>, relay=mx.example.net[192.0.2.7]:25, conn_use=2, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)`
    const got = feedAll(lines)
    assert.equal(got.length, 1)
    assert.deepEqual(brief(got[0]!), {
      domain: 'example.net',
      mx: 'mx.example.net',
      ip: '192.0.2.7',
      result: 'success',
      reason: undefined,
    })
  })

  it('name mismatch, expiry and handshake failure; ISO (RFC 5424) timestamps and IPv6 relays', () => {
    const lines = `
2026-12-04T10:00:00.123456+00:00 mx postfix/smtp[80]: Trusted TLS connection established to mx.example.org[2001:db8::25]:25: TLSv1.3 with cipher X
2026-12-04T10:00:00.223456+00:00 mx postfix/smtp[80]: 6C3D4E5F60: to=<a@example.org>, relay=mx.example.org[2001:db8::25]:25, delay=1, delays=0/0/1/0, dsn=4.7.5, status=deferred (Server certificate not verified)
2026-12-04T10:00:01+00:00 mx postfix/smtp[81]: server certificate verification failed for mx.example.com[198.51.100.5]:25: num=10:certificate has expired
2026-12-04T10:00:01+00:00 mx postfix/smtp[81]: Untrusted TLS connection established to mx.example.com[198.51.100.5]:25: TLSv1.2 with cipher X
2026-12-04T10:00:01+00:00 mx postfix/smtp[81]: 7D4E5F6071: to=<a@example.com>, relay=mx.example.com[198.51.100.5]:25, delay=1, delays=0/0/1/0, dsn=4.7.5, status=deferred (Server certificate not verified)
2026-12-04T10:00:02+00:00 mx postfix/smtp[82]: 8E5F607182: to=<a@example.edu>, relay=mx.example.edu[203.0.113.9]:25, delay=1, delays=0/0/1/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)
2026-12-04T10:00:03+00:00 mx postfix/smtp[83]: 9F60718293: to=<a@example.info>, relay=mx.example.info[203.0.113.10]:25, delay=1, delays=0/0/1/0, dsn=4.7.4, status=deferred (TLS is required, but host mx.example.info[203.0.113.10] refused to start TLS: 454 4.7.0 TLS not available)`
    assert.deepEqual(
      feedAll(lines).map((s) => [s.domain, s.ip, sessionResult(s, 'sts')]),
      [
        ['example.org', '2001:db8::25', 'certificate-host-mismatch'],
        ['example.com', '198.51.100.5', 'certificate-expired'],
        ['example.edu', '203.0.113.9', 'validation-failure'],
        ['example.info', '203.0.113.10', 'starttls-not-supported'],
      ],
    )
  })

  it('hostile and broken lines: no throw, no count', () => {
    const parser = new PostfixLogParser()
    const junk = [
      '',
      '\0\0\0',
      '\ufffd\ufffd postfix/smtp[1]: \ud800',
      'x'.repeat(MAX_LINE + 1),
      // Overlong version of a real line: not Postfix's.
      `Dec 04 19:07:07 mta postfix/smtp[9]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.0.0.1]:25, ${'x'.repeat(MAX_LINE)}, status=deferred (TLS is required, but was not offered by host plain.test[127.0.0.1])`,
      // No relay, invalid addresses, ports and domains.
      'Dec 04 mta postfix/smtp[9]: AE1D620C18E: to=<bob@plain.test>, relay=none, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      'Dec 04 mta postfix/smtp[9]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[999.1.1.1]:25, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      'Dec 04 mta postfix/smtp[9]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.0.0.1]:99999, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      'Dec 04 mta postfix/smtp[9]: AE1D620C18E: to=<bob@999>, relay=plain.test[127.0.0.1]:25, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      'Dec 04 mta postfix/smtp[9]: AE1D620C18E: to=<bob>, relay=plain.test[127.0.0.1]:25, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      'Dec 04 mta postfix/smtp[9]: AE1D620C18E: to=<bob@_x.-bad-.test>, relay=plain.test[127.0.0.1]:25, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      'Dec 04 mta postfix/smtp[9]: AE1D620C18E: to=<bob@[127.0.0.1]>, relay=plain.test[127.0.0.1]:25, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      // Not the smtp client: smtpd, cleanup, a user's own program, no pid.
      'Dec 04 mta postfix/smtpd[9]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.0.0.1]:25, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      'Dec 04 mta myapp[9]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.0.0.1]:25, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      'Dec 04 mta postfix/smtp: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.0.0.1]:25, delay=0, status=deferred (TLS is required, but was not offered by host x)',
      // A TLS line to a bad relay and a status line for it; a status line with no TLS line before it.
      'Dec 04 mta postfix/smtp[10]: Verified TLS connection established to bad_host[127.0.0.1]:25: TLSv1.3',
      'Dec 04 mta postfix/smtp[10]: AE1D620C18E: to=<bob@plain.test>, relay=bad_host[127.0.0.1]:25, delay=0, status=sent (250 ok)',
      'Dec 04 mta postfix/smtp[11]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.0.0.1]:25, delay=0, status=sent (250 ok)',
      // Truncated lines.
      'Dec 04 mta postfix/smtp[12]: Verified TLS connection established to',
      'Dec 04 mta postfix/smtp[12]: AE1D620C18E: to=<bob@plain.test>, relay=plain.test[127.0.0.1]:25, delay=0, status=deferred (TLS is requ',
    ]
    for (const l of junk) assert.deepEqual(parser.feed(l), [], l.slice(0, 120))
  })

  it('random bytes and shuffled fragments of real lines never throw, and every session names a valid domain', () => {
    const fragments = (SELF_SIGNED + NO_STARTTLS + TRUSTED_AND_PLAIN).split(/(?=[ \[\]:<>=(),])/)
    let seed = 42
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
    const parser = new PostfixLogParser()
    let sessions = 0
    for (let i = 0; i < 5000; i++) {
      let line = ''
      const parts = 1 + rand(40)
      for (let j = 0; j < parts; j++)
        line += rand(5) === 0 ? String.fromCharCode(rand(0x3000)) : (fragments[rand(fragments.length)] ?? '')
      for (const s of parser.feed(line)) {
        sessions++
        assert.match(s.domain, /^[a-z0-9.-]+$/)
        assert.ok(sessionResult(s, 'sts') !== undefined)
      }
    }
    // Bounded state: the parser keeps at most one open session per process.
    assert.ok(sessions < 5000)
  })
})

describe('following the log file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-pflog-'))
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('starts at the end, reads appended lines (partial ones once whole), survives rotation and truncation', async () => {
    const file = path.join(dir, 'maillog')
    fs.writeFileSync(file, 'old line 1\nold line 2\n')
    const seen: string[] = []
    const errors: unknown[] = []
    const f = followLog(file, (l) => seen.push(l), { intervalMs: 3_600_000, onError: (e) => errors.push(e) })
    try {
      await f.poll()
      assert.deepEqual(seen, [], 'what was there before start is not read (no double count after a restart)')
      fs.appendFileSync(file, 'one\ntw')
      await f.poll()
      assert.deepEqual(seen, ['one'])
      fs.appendFileSync(file, 'o\r\n')
      await f.poll()
      assert.deepEqual(seen, ['one', 'two'])
      // Rotation: the old file moves away, a new one starts.
      fs.renameSync(file, `${file}.1`)
      await f.poll()
      fs.writeFileSync(file, 'after rotation\n')
      await f.poll()
      assert.deepEqual(seen.slice(2), ['after rotation'])
      // Truncation (copytruncate): read from the start again.
      fs.writeFileSync(file, 'cut\n')
      await f.poll()
      assert.deepEqual(seen.slice(3), ['cut'])
      // An overlong line is skipped whole, the next one is read.
      fs.appendFileSync(file, 'y'.repeat(MAX_LINE * 3))
      await f.poll()
      fs.appendFileSync(file, `${'y'.repeat(10)}\nnext\n`)
      await f.poll()
      assert.deepEqual(seen.slice(4), ['next'])
      assert.deepEqual(errors, [])
    } finally {
      f.stop()
    }
  })

  it('a file that is not there yet is read from its start when it appears', async () => {
    const file = path.join(dir, 'later')
    const seen: string[] = []
    const errors: unknown[] = []
    const f = followLog(file, (l) => seen.push(l), { intervalMs: 3_600_000, onError: (e) => errors.push(e) })
    try {
      await f.poll()
      await f.poll()
      fs.writeFileSync(file, 'first\n')
      await f.poll()
      assert.deepEqual(seen, ['first'])
      assert.deepEqual(errors, [], 'a missing file is waited for, not an error')
    } finally {
      f.stop()
    }
  })
})
