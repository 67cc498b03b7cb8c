import { describe, it } from 'node:test'
import * as assert from 'node:assert/strict'
import { classifyAddress, isAllowedAddress, v6Bytes } from '../../../../core/net/addresses'

/** [address, class]: the edges of every range, and public neighbours just outside them. */
const TABLE: [string, string][] = [
  ['0.0.0.0', 'unspecified'],
  ['0.255.255.255', 'unspecified'],
  ['1.0.0.0', 'public'],
  ['9.255.255.255', 'public'],
  ['10.0.0.0', 'private'],
  ['10.255.255.255', 'private'],
  ['11.0.0.0', 'public'],
  ['100.63.255.255', 'public'],
  ['100.64.0.0', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['100.128.0.0', 'public'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.169.254', 'link-local'],
  ['172.15.255.255', 'public'],
  ['172.16.0.0', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.0', 'public'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'documentation'],
  ['192.167.255.255', 'public'],
  ['192.168.1.1', 'private'],
  ['192.169.0.0', 'public'],
  ['198.18.0.1', 'reserved'],
  ['198.19.255.255', 'reserved'],
  ['198.20.0.0', 'public'],
  ['198.51.100.7', 'documentation'],
  ['203.0.113.9', 'documentation'],
  ['8.8.8.8', 'public'],
  ['223.255.255.255', 'public'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.255', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['::2', 'reserved'], // ::/96 outside :: and ::1
  ['::10.0.0.1', 'private'], // deprecated v4-compatible form
  ['fe80::1', 'link-local'],
  ['febf:ffff::1', 'link-local'],
  ['fec0::1', 'private'],
  ['fc00::1', 'unique-local'],
  ['fdff:ffff::1', 'unique-local'],
  ['fbff::1', 'public'],
  ['ff02::1', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['2001::1', 'reserved'], // Teredo
  ['100::1', 'reserved'],
  ['2606:4700::1111', 'public'],
  ['2a00:1450:4001::1', 'public'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::FFFF:10.1.2.3', 'private'],
  ['::ffff:8.8.8.8', 'public'],
  ['64:ff9b::a9fe:a9fe', 'link-local'], // NAT64 of 169.254.169.254
  ['64:ff9b::808:808', 'public'],
  ['2002:c0a8:0101::1', 'private'], // 6to4 of 192.168.1.1
  ['2002:0808:0808::1', 'public'],
  ['fe80::1%eth0', 'link-local'],
  ['[::1]', 'loopback'],
  ['example.test', 'invalid'],
  ['1.2.3', 'invalid'],
  ['', 'invalid'],
  ['::g', 'invalid'],
]

describe('address classes', () => {
  for (const [ip, cls] of TABLE) {
    it(`${ip || '(empty)'} is ${cls}`, () => assert.equal(classifyAddress(ip), cls))
  }

  it('allows only public addresses unless private ones are allowed', () => {
    for (const [ip, cls] of TABLE) {
      assert.equal(isAllowedAddress(ip, false), cls === 'public', ip)
      assert.equal(isAllowedAddress(ip, true), cls !== 'invalid', ip)
    }
  })

  it('expands IPv6 forms to the same bytes', () => {
    const a = Buffer.from(v6Bytes('2001:db8:0:0:0:0:0:1'))
    assert.deepEqual(Buffer.from(v6Bytes('2001:db8::1')), a)
    assert.deepEqual(Buffer.from(v6Bytes('2001:0db8:0000::0001')), a)
    assert.deepEqual(Buffer.from(v6Bytes('::ffff:1.2.3.4')).subarray(10).toString('hex'), 'ffff01020304')
  })
})
