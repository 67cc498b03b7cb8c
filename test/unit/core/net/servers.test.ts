import { describe, it } from 'node:test'
import * as assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {
  FORBID_SYSTEM_RESOLVER_ENV,
  parseResolvConf,
  parseServer,
  systemServers,
} from '../../../../core/net/servers'

describe('DNS server addresses', () => {
  it('parses HOST:PORT, [v6]:PORT and bare addresses (port 53)', () => {
    assert.deepEqual(parseServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 })
    assert.deepEqual(parseServer('[::1]:5300'), { host: '::1', port: 5300 })
    assert.deepEqual(parseServer('[::1]'), { host: '::1', port: 53 })
    assert.deepEqual(parseServer('::1'), { host: '::1', port: 53 })
    assert.deepEqual(parseServer(' 10.0.0.53 '), { host: '10.0.0.53', port: 53 })
  })

  it('refuses names and bad ports with a message naming the key', () => {
    for (const bad of ['dns.example.test', 'localhost:53', '127.0.0.1:0', '127.0.0.1:70000', '[nope]:53']) {
      assert.throws(() => parseServer(bad), { code: 'LINKSEC_CONFIG', message: /\[resolver\] servers/ }, bad)
    }
  })

  it('reads nameserver lines from resolv.conf text', () => {
    const text =
      '# comment\nsearch example.test\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nnameserver bogus\noptions edns0\n'
    assert.deepEqual(parseResolvConf(text), [
      { host: '10.255.255.53', port: 53 },
      { host: 'fe80::1%eth0', port: 53 },
    ])
  })

  it('falls back to resolv.conf only when tests have not forbidden it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-resolv-'))
    const saved = process.env[FORBID_SYSTEM_RESOLVER_ENV]
    try {
      const file = path.join(dir, 'resolv.conf')
      fs.writeFileSync(file, 'nameserver 127.0.0.53\n')
      process.env[FORBID_SYSTEM_RESOLVER_ENV] = '1'
      assert.throws(() => systemServers(file), { code: 'LINKSEC_DNS_SYSTEM_FORBIDDEN' })
      delete process.env[FORBID_SYSTEM_RESOLVER_ENV]
      // Reading the file sends nothing; only the parsed list is checked.
      assert.deepEqual(systemServers(file), [{ host: '127.0.0.53', port: 53 }])
      fs.writeFileSync(file, 'search example.test\n')
      assert.throws(() => systemServers(file), {
        code: 'LINKSEC_DNS_NETWORK',
        message: /set \[resolver\] servers/,
      })
    } finally {
      if (saved === undefined) delete process.env[FORBID_SYSTEM_RESOLVER_ENV]
      else process.env[FORBID_SYSTEM_RESOLVER_ENV] = saved
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
