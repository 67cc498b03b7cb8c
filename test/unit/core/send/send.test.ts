import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseSendArgs } from '../../../../bin/commands/send'
import { prepareMessage } from '../../../../core/send/message'
import { resolveMx } from '../../../../core/send/mx'
import type { DnsAnswer, DnsClient, DnsRecord } from '../../../../core/net/types'

test('sendmail flags: -t -i -oi -f/-fADDR -r -F, recipients after --; an unknown flag is named', () => {
  assert.deepEqual(parseSendArgs(['-t', '-i', '-oi', '-fa@x.test', '--', '-b@x.test']), {
    extract: true,
    encrypt: false,
    requireTls: false,
    recipients: ['-b@x.test'],
    sender: 'a@x.test',
  })
  assert.equal((parseSendArgs(['-r', 'a@x.test', 'b@y.test']) as { sender: string }).sender, 'a@x.test')
  assert.deepEqual(parseSendArgs(['-bs']), { error: 'unknown flag -bs' })
  assert.deepEqual(parseSendArgs(['-f']), { error: "-f needs the sender's address" })
})

test('prepareMessage: Bcc removed and counted as a recipient with -t, Date and Message-ID added, the tag read', () => {
  const m = prepareMessage(
    Buffer.from(
      'From: A <a@x.test>\nTo: b@y.test, "C" <c@y.test>\nBcc: d@z.test\nLink-Security-Required: 3\n\nhi\n',
    ),
    { now: new Date(0), hostname: 'h.test' },
  )
  const text = m.raw.toString('latin1')
  assert.deepEqual(m.headerRecipients, ['b@y.test', 'c@y.test', 'd@z.test'])
  assert.doesNotMatch(text, /^Bcc:/im)
  assert.match(text, /^Date: Thu, 01 Jan 1970 00:00:00 \+0000\r$/m)
  assert.match(text, /^Message-ID: <[0-9a-f]+@h\.test>\r$/m)
  assert.equal(m.from?.address, 'a@x.test')
  assert.equal(m.requirement.level, 3)
})

test('--requiretls: the message requires REQUIRETLS (level 3, verified certificate); TLS-Required: No is then ignored', () => {
  assert.equal((parseSendArgs(['--requiretls', 'b@y.test']) as { requireTls: boolean }).requireTls, true)
  const input = Buffer.from('From: a@x.test\nTo: b@y.test\nTLS-Required: No\n\nhi\n')
  const asked = prepareMessage(input, { now: new Date(0), hostname: 'h.test', requireTls: true })
  assert.equal(asked.requirement.source, 'requiretls')
  assert.equal(asked.requirement.level, 3)
  assert.equal(asked.requirement.verifiedCertificate, true)
  assert.equal(asked.requirement.tlsOptional, false)
  const plain = prepareMessage(input, { now: new Date(0), hostname: 'h.test' })
  assert.equal(plain.requirement.source, 'none')
  assert.equal(plain.requirement.tlsOptional, true)
})

function fakeDns(
  zone: Record<string, Partial<Record<'MX' | 'A' | 'AAAA', DnsRecord[]>> | 'NXDOMAIN' | 'SERVFAIL'>,
): DnsClient {
  return {
    async query(name, type): Promise<DnsAnswer> {
      const z = zone[name]
      if (z === 'NXDOMAIN' || z === 'SERVFAIL') return { rcode: z, authenticated: false, records: [] }
      return { rcode: 'NOERROR', authenticated: false, records: z?.[type as 'MX'] ?? [] }
    },
  }
}
const mx = (priority: number, exchange: string): DnsRecord => ({
  type: 'MX',
  name: 'd',
  ttl: 1,
  priority,
  exchange,
})
const a = (address: string): DnsRecord => ({ type: 'A', name: 'h', ttl: 1, address })

test('resolveMx: by preference, implicit MX, null MX, NXDOMAIN, private addresses refused unless allowed, SERVFAIL is temporary', async () => {
  const dns = fakeDns({
    'd.test': { MX: [mx(20, 'b.d.test'), mx(10, 'a.d.test')] },
    'a.d.test': { A: [a('192.0.2.1')] },
    'b.d.test': { A: [a('198.51.100.1')] },
    'impl.test': { A: [a('9.9.9.9')] },
    'null.test': { MX: [mx(0, '.')] },
    'priv.test': { MX: [mx(10, 'mx.priv.test')] },
    'mx.priv.test': { A: [a('10.0.0.1')] },
    'gone.test': 'NXDOMAIN',
    'fail.test': 'SERVFAIL',
  })
  const r = await resolveMx(dns, 'd.test', { allowPrivate: true })
  assert.ok(r.kind === 'hosts')
  assert.deepEqual(
    r.hosts.map((h) => h.name),
    ['a.d.test', 'b.d.test'],
  )
  const impl = await resolveMx(dns, 'impl.test', { allowPrivate: false })
  assert.ok(impl.kind === 'hosts' && impl.implicit && impl.hosts[0]!.addresses[0] === '9.9.9.9')
  assert.match((await resolveMx(dns, 'null.test', { allowPrivate: true })).kind, /^none$/)
  const priv = await resolveMx(dns, 'priv.test', { allowPrivate: false })
  assert.ok(priv.kind === 'none' && /private addresses .*allow_private_addresses/.test(priv.reason))
  assert.equal((await resolveMx(dns, 'priv.test', { allowPrivate: true })).kind, 'hosts')
  assert.equal((await resolveMx(dns, 'gone.test', { allowPrivate: true })).kind, 'none')
  assert.equal((await resolveMx(dns, 'fail.test', { allowPrivate: true })).kind, 'temp')
  const none = await resolveMx(dns, 'empty.test', { allowPrivate: true })
  assert.ok(none.kind === 'none' && /no MX and no address record/.test(none.reason))
})
