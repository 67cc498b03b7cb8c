/**
 * The key-server role: `linksec keys add|list|remove` manage config/keys/
 * (refusing a key without a user ID for its address), `linksec serve`
 * publishes them over WKD (advanced and direct layouts, the policy file,
 * HEAD), and linksec's own key discovery, pointed at those paths through the
 * loopback HTTPS world, verifies a message with them.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseConfig } from '../../core/config'
import { createWkdHandler } from '../../core/http/wkd'
import { parseAddress, wkdHash } from '../../core/keys'
import { silentLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { verifyMessage } from '../../core/verify'
import { freePort, waitForPort } from '../helpers/ports'
import { startLinksecServe, type ServeInstance } from '../helpers/postfix'
import * as S from '../helpers/signers'
import { startWorld, type World } from '../helpers/world'

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'linksec.js')

function linksec(...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, out: r.stdout, err: r.stderr }
}

function get(
  port: number,
  p: string,
  host: string,
  method = 'GET',
): Promise<{ status: number; body: Buffer; type?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers: { host } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () =>
        resolve({ status: res.statusCode!, body: Buffer.concat(chunks), type: res.headers['content-type'] }),
      )
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
    req.end()
  })
}

describe('linksec keys and WKD publishing', { skip: S.missingSigners(['gpg']) }, () => {
  let kit: S.SignerKit
  let alice: S.TestSigner
  let dir: string
  let serve: ServeInstance | undefined
  let world: World | undefined
  let httpPort: number
  const hash = () => wkdHash('alice')

  before(async () => {
    kit = new S.SignerKit()
    alice = kit.gpg({ address: 'alice@pub.test', name: 'Alice' })
    dir = kit.scratch('config')
    fs.writeFileSync(path.join(dir, 'linksec.ini'), '[log]\nlevel=warn\n')
    fs.writeFileSync(path.join(dir, 'alice.pgp'), alice.publicKey())
  })
  after(async () => {
    await serve?.stop()
    await world?.close()
    kit?.cleanup()
  })

  it('keys add refuses a key without a user ID for the address, then adds, lists and removes', () => {
    const key = path.join(dir, 'alice.pgp')
    const wrong = linksec('keys', 'add', key, 'bob@pub.test', '--config', dir)
    assert.equal(wrong.status, 1)
    assert.match(wrong.err, /no user ID for bob@pub\.test/)
    const ok = linksec('keys', 'add', key, '--config', dir)
    assert.equal(ok.status, 0, ok.err)
    assert.match(ok.out, new RegExp(`added alice@pub\\.test \\(${alice.fingerprint}\\)`))
    const list = linksec('keys', 'list', '--config', dir)
    assert.match(
      list.out,
      new RegExp(`^alice@pub\\.test\\t${alice.fingerprint}\\tvalid\\twkd=${hash()}`, 'm'),
    )
    assert.equal(linksec('keys', 'remove', 'alice@pub.test', '--config', dir).status, 0)
    assert.match(linksec('keys', 'list', '--config', dir).out, /no keys in/)
    assert.equal(linksec('keys', 'remove', 'alice@pub.test', '--config', dir).status, 1)
    assert.equal(linksec('keys', 'add', key, '--config', dir).status, 0)
  })

  it('linksec serve publishes the key: advanced, direct, policy, HEAD, 404', async () => {
    httpPort = await freePort()
    serve = await startLinksecServe({
      ini: {
        log: { level: 'warn' },
        keys: { dir: path.join(dir, 'keys') },
        http: { listen: `127.0.0.1:${httpPort}` },
      },
    })
    await waitForPort(httpPort)
    const adv = await get(
      httpPort,
      `/.well-known/openpgpkey/pub.test/hu/${hash()}?l=alice`,
      'openpgpkey.pub.test',
    )
    assert.equal(adv.status, 200)
    assert.equal(adv.type, 'application/octet-stream')
    assert.equal(adv.body[0]! & 0x80, 0x80, 'binary, not armored')
    const direct = await get(httpPort, `/.well-known/openpgpkey/hu/${hash()}`, 'pub.test:443')
    assert.deepEqual(direct.body, adv.body)
    assert.equal(
      (await get(httpPort, '/.well-known/openpgpkey/pub.test/policy', 'openpgpkey.pub.test')).status,
      200,
    )
    assert.equal((await get(httpPort, '/.well-known/openpgpkey/policy', 'pub.test')).status, 200)
    const head = await get(httpPort, `/.well-known/openpgpkey/hu/${hash()}`, 'pub.test', 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.body.length, 0)
    assert.equal(
      (await get(httpPort, `/.well-known/openpgpkey/hu/${wkdHash('nobody')}`, 'pub.test')).status,
      404,
    )
    assert.equal((await get(httpPort, '/.well-known/openpgpkey/other.test/policy', 'x')).status, 404)
    assert.equal(
      (await get(httpPort, `/.well-known/openpgpkey/hu/${hash()}`, 'pub.test', 'POST')).status,
      405,
    )
  })

  it('what linksec publishes, linksec finds: a signed message passes through the WKD round trip', async () => {
    const publisher = createRuntime(parseConfig({ keys: { dir: path.join(dir, 'keys') } }, dir), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    const handler = createWkdHandler(publisher)
    const a = parseAddress(alice.address)!
    world = await startWorld({
      hosts: ['openpgpkey.pub.test'],
      routes: {
        [`openpgpkey.pub.test/.well-known/openpgpkey/pub.test/hu/${wkdHash(a.local)}`]: (req, res) =>
          void handler(req, res),
      },
    })
    const rt = createRuntime(world.config({ keys: { methods: ['wkd'] } }), {
      log: silentLogger,
      metrics: createMetrics({ processMetrics: false }),
    })
    const msg = S.pgpMimeMessage(alice, { from: `Alice <${alice.address}>` }, S.textPart('published\n'))
    const d = await verifyMessage(rt, msg, { signaturePolicy: async () => 'optional' })
    assert.equal(d.result, 'pass', d.facts.reason)
    assert.equal(d.facts.keySource, 'wkd_advanced')
    assert.equal(d.facts.fingerprint, alice.fingerprint)
    assert.match(
      await publisher.metrics.registry.metrics(),
      /linksec_wkd_requests_total\{layout="advanced",status="200"\} 1/,
    )
  })
})
