/**
 * The `_linksec` sig= lookup the verifier uses: answers are cached for the
 * record's ttl, and peek() hands a live cached answer over without I/O (the
 * verifier then arms no deadline timer for the message).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { DnsAnswer, DnsClient } from '../../../../core/net/types'
import { createSignaturePolicyLookup } from '../../../../core/verify/sig-policy'

function fakeDns(texts: Record<string, string>): DnsClient & { asked: string[] } {
  const asked: string[] = []
  return {
    asked,
    async query(name: string): Promise<DnsAnswer> {
      asked.push(name)
      const text = texts[name]
      return text === undefined
        ? { rcode: 'NXDOMAIN', authenticated: false, records: [] }
        : { rcode: 'NOERROR', authenticated: false, records: [{ type: 'TXT', name, ttl: 600, text }] }
    },
  }
}

test('peek: nothing before the first lookup, the cached answer after it, nothing once expired', async () => {
  let now = 1_000_000
  const dns = fakeDns({ '_linksec.signed.test': 'v=LINKSEC1; level=3; ttl=600; sig=required' })
  const lookup = createSignaturePolicyLookup({ dns, now: () => now, negativeTtlMs: 60_000 })
  assert.equal(lookup.peek?.('signed.test'), undefined)
  assert.equal(lookup.peek?.('plain.test'), undefined)
  assert.equal(await lookup('signed.test'), 'required')
  assert.equal(await lookup('plain.test'), 'optional')
  assert.equal(lookup.peek?.('signed.test'), 'required')
  assert.equal(lookup.peek?.('plain.test'), 'optional')
  assert.deepEqual(dns.asked, ['_linksec.signed.test', '_linksec.plain.test'])
  now += 61_000 // past the negative ttl, within the record's 600 s
  assert.equal(lookup.peek?.('plain.test'), undefined)
  assert.equal(lookup.peek?.('signed.test'), 'required')
})

test('ca=: declared with the AD bit it came with; none without; a failed refresh keeps a validated CA', async () => {
  let now = 1_000_000
  const fpr = 'E64953EFE22FD5376937172E625CC9AD8D7B48B1'
  let ad = true
  let down = false
  const texts: Record<string, string> = {
    '_linksec.ca.test': `v=LINKSEC1; level=3; ttl=600; ca=${fpr.toLowerCase()}`,
    '_linksec.plain.test': 'v=LINKSEC1; level=3; ttl=600',
  }
  const dns: DnsClient = {
    async query(name: string): Promise<DnsAnswer> {
      if (down) throw new Error('SERVFAIL')
      const text = texts[name]
      return text === undefined
        ? { rcode: 'NXDOMAIN', authenticated: ad, records: [] }
        : { rcode: 'NOERROR', authenticated: ad, records: [{ type: 'TXT', name, ttl: 600, text }] }
    },
  }
  const lookup = createSignaturePolicyLookup({ dns, now: () => now, negativeTtlMs: 60_000 })
  assert.equal(lookup.peekCa?.('ca.test'), undefined)
  assert.deepEqual(await lookup.ca!('ca.test'), { kind: 'declared', fingerprint: fpr, validated: true })
  assert.deepEqual(lookup.peekCa?.('ca.test'), { kind: 'declared', fingerprint: fpr, validated: true })
  assert.deepEqual(await lookup.ca!('plain.test'), { kind: 'none' })
  assert.deepEqual(await lookup.ca!('absent.test'), { kind: 'none' })
  // One answer serves sig= and ca=: no second query.
  assert.equal(await lookup('ca.test'), 'optional')
  now += 601_000
  down = true
  assert.deepEqual(await lookup.ca!('ca.test'), { kind: 'declared', fingerprint: fpr, validated: true })
  assert.equal((await lookup.ca!('plain.test')).kind, 'unknown')
  assert.equal(await lookup('plain.test'), 'unknown', 'a stale optional still does not count')
  down = false
  ad = false
  now += 601_000
  assert.deepEqual(await lookup.ca!('ca.test'), { kind: 'declared', fingerprint: fpr, validated: false })
})
