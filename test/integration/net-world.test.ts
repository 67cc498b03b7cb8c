/**
 * The loopback world end to end: a config directory written by world.ts is
 * loaded like an operator's, and the runtime's DNS and HTTPS clients reach
 * the world's servers by name (never the system resolver, never off-machine).
 */
import { after, before, describe, it } from 'node:test'
import * as assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { loadConfig } from '../../core/config'
import { dnsClientFor } from '../../core/net/dns'
import { httpsClientFor } from '../../core/net/https'
import { createRuntime } from '../../core/runtime'
import { silentLogger } from '../../core/log'
import { which } from '../helpers/tools'
import { startWorld, type World } from '../helpers/world'

const POLICY = 'version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n'

describe('loopback world', () => {
  let world: World
  before(async () => {
    if (!which('openssl')) throw new Error('openssl is needed for the test CA (apt-get install openssl)')
    world = await startWorld({
      zone: { '_mta-sts.example.test': { TXT: ['v=STSv1; id=20240101;'] } },
      hosts: ['mta-sts.example.test'],
      routes: { 'mta-sts.example.test/.well-known/mta-sts.txt': { body: POLICY } },
      ad: true,
    })
  })
  after(() => world?.close())

  it('writes a config that loads and points at the world', () => {
    const cfg = world.config({ main: { level: 4 } })
    assert.deepEqual(cfg.resolver.servers, [world.dns.address])
    assert.equal(cfg.net.https_port, world.https.port)
    assert.equal(cfg.net.allow_private_addresses, true)
    assert.equal(cfg.net.ca_file, world.ca.caFile)
    assert.equal(cfg.main.level, 4)
  })

  it('resolves and fetches through the runtime clients', async () => {
    const rt = createRuntime(loadConfig(world.configIni()), { log: silentLogger })
    const txt = await dnsClientFor(rt).query('_mta-sts.example.test', 'TXT')
    assert.equal(txt.authenticated, true)
    assert.deepEqual(
      txt.records.map((r) => r.type === 'TXT' && r.text),
      ['v=STSv1; id=20240101;'],
    )
    const res = await httpsClientFor(rt).get('https://mta-sts.example.test/.well-known/mta-sts.txt')
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), POLICY)
    assert.equal(world.https.requests.at(-1)?.servername, 'mta-sts.example.test')
  })

  it('lets a test break the world while it runs (refresh failures)', async () => {
    const rt = createRuntime(loadConfig(world.configIni({ net: { timeout_ms: 300 } })), { log: silentLogger })
    world.https.route('mta-sts.example.test/.well-known/mta-sts.txt', { fault: 'hang' })
    world.dns.fault('_mta-sts.example.test', 'servfail')
    try {
      await assert.rejects(httpsClientFor(rt).get('https://mta-sts.example.test/.well-known/mta-sts.txt'), {
        code: 'LINKSEC_FETCH_TIMEOUT',
      })
      assert.equal((await dnsClientFor(rt).query('_mta-sts.example.test', 'TXT')).rcode, 'SERVFAIL')
    } finally {
      world.https.route('mta-sts.example.test/.well-known/mta-sts.txt', { body: POLICY })
      world.dns.set('_mta-sts.example.test', { TXT: ['v=STSv1; id=20240101;'] })
    }
  })

  it('writes extra files beside linksec.ini and removes its directories on close', async () => {
    const other = await startWorld()
    const dir = other.configIni({}, { 'linksec.domains.json': '{"policies":{}}', 'keys/README': 'x' })
    assert.ok(fs.existsSync(path.join(dir, 'linksec.domains.json')))
    assert.ok(fs.existsSync(path.join(dir, 'keys', 'README')))
    await other.close()
    assert.equal(fs.existsSync(dir), false)
  })
})
