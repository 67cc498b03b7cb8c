import { after, before, describe, it } from 'node:test'
import * as assert from 'node:assert/strict'
import * as crypto from 'node:crypto'
import * as dgram from 'node:dgram'
import * as dnsPacket from 'dns-packet'
import { createDnsClient, dnsClientFor } from '../../../../core/net/dns'
import { createRuntime } from '../../../../core/runtime'
import { parseConfig } from '../../../../core/config'
import { silentLogger } from '../../../../core/log'
import type { DnsClient } from '../../../../core/net/types'
import { startDnsServer, type TestDnsServer } from '../../../helpers/dns-server'

const BIG_KEY = crypto.randomBytes(3000) // larger than the 1232-byte EDNS payload: forces TCP
const TLSA_HASH = crypto.createHash('sha256').update('cert').digest()

const ZONE = {
  'a.example.test': { A: ['192.0.2.1', '192.0.2.2'], AAAA: ['2001:db8::1'] },
  'mx.example.test': { MX: ['10 mx1.example.test', { priority: 20, exchange: 'MX2.example.test.' }] },
  'txt.example.test': { TXT: [['v=LINKSEC1; ', 'level=3'], 'second record'] },
  '_25._tcp.mx1.example.test': { TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: TLSA_HASH }] },
  'key._openpgpkey.example.test': { OPENPGPKEY: [BIG_KEY] },
  'alias.example.test': { CNAME: 'a.example.test' },
  'deep.sub.example.test': { A: ['192.0.2.9'] },
  'broken.example.test': { A: ['192.0.2.3'], fault: 'servfail' as const },
  'silent.example.test': { A: ['192.0.2.4'], fault: 'timeout' as const },
  'garbage.example.test': { A: ['192.0.2.5'], fault: 'malformed' as const },
  'tc.example.test': { A: ['192.0.2.6'], fault: 'truncate' as const },
  'spoofed.example.test': { A: ['192.0.2.7'], fault: 'spoof' as const },
  'insecure.example.test': { A: ['192.0.2.8'], secure: false },
}

describe('DNS client against the test DNS server', () => {
  let dns: TestDnsServer
  let client: DnsClient
  before(async () => {
    dns = await startDnsServer(ZONE)
    client = createDnsClient({ servers: [dns.address], timeoutMs: 2000, trustAd: true })
  })
  after(() => dns.close())

  it('answers A and AAAA', async () => {
    const a = await client.query('A.Example.Test.', 'A')
    assert.equal(a.rcode, 'NOERROR')
    assert.deepEqual(a.records.map((r) => r.type === 'A' && r.address).sort(), ['192.0.2.1', '192.0.2.2'])
    assert.equal(a.records[0]!.name, 'a.example.test')
    assert.equal(a.records[0]!.ttl, 300)
    const aaaa = await client.query('a.example.test', 'AAAA')
    assert.deepEqual(aaaa.records, [
      { type: 'AAAA', name: 'a.example.test', ttl: 300, address: '2001:db8::1' },
    ])
  })

  it('answers MX with priority and a lower-case exchange', async () => {
    const mx = await client.query('mx.example.test', 'MX')
    const got = mx.records.map((r) => (r.type === 'MX' ? [r.priority, r.exchange] : []))
    assert.deepEqual(got, [
      [10, 'mx1.example.test'],
      [20, 'mx2.example.test'],
    ])
  })

  it('joins the strings of one TXT record without a separator, records kept apart', async () => {
    const txt = await client.query('txt.example.test', 'TXT')
    assert.deepEqual(txt.records.map((r) => r.type === 'TXT' && r.text).sort(), [
      'second record',
      'v=LINKSEC1; level=3',
    ])
  })

  it('answers TLSA (type 52) with its fields', async () => {
    const t = await client.query('_25._tcp.mx1.example.test', 'TLSA')
    assert.equal(t.records.length, 1)
    const r = t.records[0]!
    assert.ok(r.type === 'TLSA')
    assert.deepEqual([r.usage, r.selector, r.matchingType], [3, 1, 1])
    assert.ok(r.data.equals(TLSA_HASH))
  })

  it('answers OPENPGPKEY (type 61) as raw RDATA, over TCP when UDP truncates', async () => {
    const before = dns.queries.length
    const k = await client.query('key._openpgpkey.example.test', 'OPENPGPKEY')
    assert.equal(k.records.length, 1)
    assert.ok(k.records[0]!.type === 'OPENPGPKEY' && k.records[0]!.data.equals(BIG_KEY))
    const log = dns.queries.slice(before)
    assert.deepEqual(
      log.map((q) => [q.type, q.transport]),
      [
        ['OPENPGPKEY', 'udp'],
        ['OPENPGPKEY', 'tcp'],
      ],
    )
  })

  it('answers CNAME itself, and follows a CNAME to the asked type', async () => {
    const c = await client.query('alias.example.test', 'CNAME')
    assert.deepEqual(c.records, [
      { type: 'CNAME', name: 'alias.example.test', ttl: 300, target: 'a.example.test' },
    ])
    const a = await client.query('alias.example.test', 'A')
    assert.equal(a.records.length, 2)
    assert.ok(a.records.every((r) => r.type === 'A' && r.name === 'a.example.test'))
  })

  it('returns NXDOMAIN and empty answers as values', async () => {
    const nx = await client.query('nothing.example.test', 'A')
    assert.deepEqual(nx, { rcode: 'NXDOMAIN', authenticated: false, records: [] })
    const empty = await client.query('a.example.test', 'TXT')
    assert.deepEqual(empty, { rcode: 'NOERROR', authenticated: false, records: [] })
    const ent = await client.query('sub.example.test', 'A')
    assert.equal(ent.rcode, 'NOERROR')
  })

  it('returns SERVFAIL as a value when no other server is left', async () => {
    const r = await client.query('broken.example.test', 'A')
    assert.equal(r.rcode, 'SERVFAIL')
    assert.deepEqual(r.records, [])
  })

  it('times out with LINKSEC_DNS_TIMEOUT (temporary) at its deadline', { timeout: 5000 }, async () => {
    const quick = createDnsClient({ servers: [dns.address], timeoutMs: 150, trustAd: true })
    await assert.rejects(quick.query('silent.example.test', 'A'), {
      code: 'LINKSEC_DNS_TIMEOUT',
      temporary: true,
    })
  })

  it("stops when the caller's signal aborts", { timeout: 5000 }, async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 50)
    await assert.rejects(client.query('silent.example.test', 'A', { signal: ac.signal }), {
      code: 'LINKSEC_DNS_TIMEOUT',
    })
  })

  it('reports a reply it cannot decode as LINKSEC_DNS_MALFORMED', async () => {
    await assert.rejects(client.query('garbage.example.test', 'A'), {
      code: 'LINKSEC_DNS_MALFORMED',
      temporary: true,
    })
  })

  it('retries a truncated reply over TCP', async () => {
    const before = dns.queries.length
    const r = await client.query('tc.example.test', 'A')
    assert.deepEqual(
      r.records.map((x) => x.type === 'A' && x.address),
      ['192.0.2.6'],
    )
    assert.deepEqual(
      dns.queries.slice(before).map((q) => q.transport),
      ['udp', 'tcp'],
    )
  })

  it('ignores a reply with the wrong id and takes the real one', async () => {
    const r = await client.query('spoofed.example.test', 'A')
    assert.deepEqual(
      r.records.map((x) => x.type === 'A' && x.address),
      ['192.0.2.7'],
    )
  })

  it('reports authenticated only when AD is set and trusted', async () => {
    dns.ad = true
    try {
      assert.equal((await client.query('a.example.test', 'A')).authenticated, true)
      assert.equal((await client.query('insecure.example.test', 'A')).authenticated, false)
      const distrust = createDnsClient({ servers: [dns.address], timeoutMs: 2000, trustAd: false })
      assert.equal((await distrust.query('a.example.test', 'A')).authenticated, false)
    } finally {
      dns.ad = false
    }
    assert.equal((await client.query('a.example.test', 'A')).authenticated, false)
  })

  it('sees zone changes made while running', async () => {
    dns.set('late.example.test', { TXT: ['v=1'] })
    assert.equal((await client.query('late.example.test', 'TXT')).records.length, 1)
    dns.remove('late.example.test')
    assert.equal((await client.query('late.example.test', 'TXT')).rcode, 'NXDOMAIN')
  })

  it('refuses names that cannot be asked', async () => {
    for (const bad of ['', 'a..b', `${'x'.repeat(64)}.test`, 'sp ace.test', `${'a.'.repeat(130)}test`]) {
      await assert.rejects(client.query(bad, 'A'), { code: 'LINKSEC_DNS_BAD_NAME', temporary: false }, bad)
    }
  })
})

describe('DNS client with several servers', () => {
  let good: TestDnsServer
  let bad: TestDnsServer
  before(async () => {
    good = await startDnsServer({ 'x.example.test': { A: ['192.0.2.10'] } })
    bad = await startDnsServer({
      'x.example.test': { fault: 'timeout' },
      'y.example.test': { fault: 'servfail' },
    })
    good.set('y.example.test', { A: ['192.0.2.11'] })
  })
  after(async () => {
    await good.close()
    await bad.close()
  })

  it('tries the next server after a timeout', { timeout: 5000 }, async () => {
    const c = createDnsClient({ servers: [bad.address, good.address], timeoutMs: 1500, trustAd: true })
    const r = await c.query('x.example.test', 'A')
    assert.deepEqual(
      r.records.map((x) => x.type === 'A' && x.address),
      ['192.0.2.10'],
    )
    // The silent server was asked, then asked once more halfway through its share (UDP retransmit).
    assert.deepEqual(
      bad.queries.filter((q) => q.name === 'x.example.test').map((q) => q.transport),
      ['udp', 'udp'],
    )
  })

  it('tries the next server after SERVFAIL', async () => {
    const c = createDnsClient({ servers: [bad.address, good.address], timeoutMs: 2000, trustAd: true })
    const r = await c.query('y.example.test', 'A')
    assert.equal(r.rcode, 'NOERROR')
    assert.equal(r.records.length, 1)
  })

  it('reports an unreachable server as LINKSEC_DNS_NETWORK', { timeout: 5000 }, async () => {
    const closed = dgram.createSocket('udp4')
    const port = await new Promise<number>((res) =>
      closed.bind(0, '127.0.0.1', () => res(closed.address().port)),
    )
    await new Promise<void>((res) => closed.close(() => res()))
    const c = createDnsClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 2000, trustAd: true })
    await assert.rejects(c.query('x.example.test', 'A'), { code: 'LINKSEC_DNS_NETWORK', temporary: true })
  })
})

describe('DNS client wire behaviour (raw server)', () => {
  it('sends RD, EDNS0 with DO, and random ids; ignores replies for another question', async () => {
    const sock = dgram.createSocket('udp4')
    const port = await new Promise<number>((res) => sock.bind(0, '127.0.0.1', () => res(sock.address().port)))
    const seen: dnsPacket.DecodedPacket[] = []
    sock.on('message', (msg, rinfo) => {
      const q = dnsPacket.decode(msg)
      seen.push(q)
      const reply = (name: string, ip: string) =>
        dnsPacket.encode({
          type: 'response',
          id: q.id,
          flags: dnsPacket.RECURSION_DESIRED,
          questions: [{ name, type: 'A', class: 'IN' }],
          answers: [{ name, type: 'A', class: 'IN', ttl: 60, data: ip }],
        })
      sock.send(reply('other.example.test', '192.0.2.66'), rinfo.port, rinfo.address)
      sock.send(reply(q.questions![0]!.name, '192.0.2.1'), rinfo.port, rinfo.address)
    })
    try {
      const c = createDnsClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 2000, trustAd: true })
      for (let i = 0; i < 4; i++) {
        const r = await c.query('q.example.test', 'A')
        assert.deepEqual(
          r.records.map((x) => x.type === 'A' && x.address),
          ['192.0.2.1'],
        )
      }
      const opt = seen[0]!.additionals!.find((a) => a.type === 'OPT') as { flag_do?: boolean } | undefined
      assert.equal(opt?.flag_do, true)
      assert.equal(seen[0]!.flag_rd, true)
      assert.ok(new Set(seen.map((q) => q.id)).size > 1, 'ids vary between queries')
    } finally {
      sock.close()
    }
  })
})

describe('DNS client over a lossy path', () => {
  it('sends the query again when the first one goes unanswered', { timeout: 5000 }, async () => {
    const sock = dgram.createSocket('udp4')
    const port = await new Promise<number>((res) => sock.bind(0, '127.0.0.1', () => res(sock.address().port)))
    let seen = 0
    sock.on('message', (msg, rinfo) => {
      if (++seen === 1) return // "lost"
      const q = dnsPacket.decode(msg)
      const name = q.questions![0]!.name
      const reply = dnsPacket.encode({
        type: 'response',
        id: q.id,
        questions: q.questions,
        answers: [{ name, type: 'A', class: 'IN', ttl: 60, data: '192.0.2.1' }],
      })
      sock.send(reply, rinfo.port, rinfo.address)
    })
    try {
      const c = createDnsClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 600, trustAd: true })
      const r = await c.query('lossy.example.test', 'A')
      assert.equal(r.records.length, 1)
      assert.equal(seen, 2)
    } finally {
      sock.close()
    }
  })
})

describe('DNS client configuration', () => {
  it('refuses the system resolver while test helpers forbid it', async () => {
    const c = createDnsClient({ servers: [], timeoutMs: 100, trustAd: false })
    await assert.rejects(c.query('example.test', 'A'), { code: 'LINKSEC_DNS_SYSTEM_FORBIDDEN' })
  })

  it('refuses server names that are not IP addresses', () => {
    assert.throws(
      () => createDnsClient({ servers: ['dns.example.test:53'], timeoutMs: 100, trustAd: false }),
      {
        code: 'LINKSEC_CONFIG',
      },
    )
  })

  it('builds one client per runtime from [resolver]', async () => {
    const dns = await startDnsServer({ 'r.example.test': { A: ['192.0.2.20'] } })
    try {
      const cfg = parseConfig({ resolver: { servers: dns.address, timeout_ms: '3000' } }, '/tmp')
      const rt = createRuntime(cfg, { log: silentLogger })
      assert.equal(dnsClientFor(rt), dnsClientFor(rt))
      const r = await dnsClientFor(rt).query('r.example.test', 'A')
      assert.equal(r.records.length, 1)
    } finally {
      await dns.close()
    }
  })
})
