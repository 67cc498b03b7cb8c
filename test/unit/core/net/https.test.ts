import { after, before, describe, it } from 'node:test'
import * as assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { createDnsClient } from '../../../../core/net/dns'
import {
  createHttpsClient,
  httpsClientFor,
  parseTarget,
  type HttpsClientOptions,
} from '../../../../core/net/https'
import { parseConfig } from '../../../../core/config'
import { createRuntime } from '../../../../core/runtime'
import { silentLogger } from '../../../../core/log'
import type { HttpsClient } from '../../../../core/net/types'
import { startDnsServer, type TestDnsServer } from '../../../helpers/dns-server'
import { redirect, startHttpsServer, type TestHttpsServer } from '../../../helpers/https-server'
import { testCa } from '../../../helpers/test-ca'

const POLICY = 'version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n'
const LOOPBACK = { A: ['127.0.0.1'] }

describe('HTTPS client against the test HTTPS server', () => {
  let dns: TestDnsServer
  let web: TestHttpsServer
  let base: HttpsClientOptions
  let client: HttpsClient

  before(async () => {
    dns = await startDnsServer({
      'mta-sts.example.test': LOOPBACK,
      'other.example.test': LOOPBACK,
      'wrongname.example.test': LOOPBACK,
      'untrusted.example.test': LOOPBACK,
      'two.example.test': { A: ['127.0.0.2', '127.0.0.1'] },
      'v6only.example.test': { AAAA: ['::1'] },
      'broken.example.test': { fault: 'servfail' },
    })
    web = await startHttpsServer({
      'mta-sts.example.test/.well-known/mta-sts.txt': { body: POLICY, headers: { 'x-extra': 'yes' } },
      '/ok': { body: 'ok' },
      '/hang': { fault: 'hang' },
      '/drip': { fault: 'drip', dripMs: 20 },
      '/big': { fault: 'oversized', bytes: 64 * 1024 },
      '/big-chunked': { fault: 'oversized', bytes: 64 * 1024, declareLength: false },
      '/boom': { status: 500, body: 'oops' },
      '/reset': { fault: 'reset' },
      '/moved': redirect('/ok'),
      '/moved-abs': redirect('https://mta-sts.example.test/ok', 301),
      '/elsewhere': redirect('https://other.example.test/ok'),
      '/plain': redirect('http://mta-sts.example.test/ok'),
      '/loop': redirect('/loop'),
      '/post': (req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => {
          const body = Buffer.concat(chunks)
          res.writeHead(201, { 'content-type': 'text/plain' })
          res.end(`${req.method} ${String(req.headers['content-type'])} ${body.toString('hex')}`)
        })
      },
    })
    web.certFault('wrongname.example.test', 'wrong-name')
    web.certFault('untrusted.example.test', 'unknown-ca')
    await web.prepare([
      'mta-sts.example.test',
      'other.example.test',
      'wrongname.example.test',
      'untrusted.example.test',
    ])
    await web.prepare(['two.example.test', 'v6only.example.test'])
    base = {
      dns: createDnsClient({ servers: [dns.address], timeoutMs: 3000, trustAd: false }),
      caFile: testCa().caFile,
      allowPrivateAddresses: true,
      httpsPort: web.port,
      timeoutMs: 10000, // generous: only the timeout tests use short deadlines
      maxBytes: 16 * 1024,
    }
    client = createHttpsClient(base)
  })
  after(async () => {
    await web.close()
    await dns.close()
  })

  it('fetches a body with SNI, the host header and lower-cased headers', async () => {
    const res = await client.get('https://MTA-STS.example.test/.well-known/mta-sts.txt')
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), POLICY)
    assert.equal(res.headers['x-extra'], 'yes')
    assert.equal(res.headers['content-type'], 'text/plain')
    assert.equal(res.url, 'https://mta-sts.example.test/.well-known/mta-sts.txt')
    const seen = web.requests.at(-1)!
    assert.equal(seen.servername, 'mta-sts.example.test')
    assert.equal(seen.host, 'mta-sts.example.test')
    assert.equal(dns.asked('mta-sts.example.test', 'A') > 0, true)
  })

  it('supports HEAD', async () => {
    const res = await client.get('https://mta-sts.example.test/ok', { method: 'HEAD' })
    assert.equal(res.status, 200)
    assert.equal(res.body.length, 0)
    assert.equal(web.requests.at(-1)!.method, 'HEAD')
  })

  it('POSTs a body with its content type (TLS reports), under the same address rules', async () => {
    const body = Buffer.from([0x1f, 0x8b, 0, 1])
    const res = await client.get('https://mta-sts.example.test/post', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/tlsrpt+gzip' },
    })
    assert.equal(res.status, 201)
    assert.equal(res.body.toString(), 'POST application/tlsrpt+gzip 1f8b0001')
    const strict = createHttpsClient({ ...base, allowPrivateAddresses: false })
    await assert.rejects(strict.get('https://mta-sts.example.test/post', { method: 'POST', body }), {
      code: 'LINKSEC_FETCH_PRIVATE_ADDRESS',
    })
  })

  it('returns 404 and 500 as values', async () => {
    assert.equal((await client.get('https://mta-sts.example.test/nope')).status, 404)
    const boom = await client.get('https://mta-sts.example.test/boom')
    assert.equal(boom.status, 500)
    assert.equal(boom.body.toString(), 'oops')
  })

  it('refuses loopback targets unless private addresses are allowed', async () => {
    const strict = createHttpsClient({ ...base, allowPrivateAddresses: false })
    const before = web.requests.length
    await assert.rejects(strict.get('https://mta-sts.example.test/ok'), {
      code: 'LINKSEC_FETCH_PRIVATE_ADDRESS',
      temporary: false,
    })
    await assert.rejects(strict.get(`https://127.0.0.1:${web.port}/ok`), {
      code: 'LINKSEC_FETCH_PRIVATE_ADDRESS',
    })
    await assert.rejects(strict.get('https://[::ffff:7f00:1]/ok'), { code: 'LINKSEC_FETCH_PRIVATE_ADDRESS' })
    assert.equal(web.requests.length, before, 'no request reached the server')
  })

  it('cuts a server that never answers at the deadline', { timeout: 10000 }, async () => {
    const quick = createHttpsClient({ ...base, timeoutMs: 300 })
    await assert.rejects(quick.get('https://mta-sts.example.test/hang'), {
      code: 'LINKSEC_FETCH_TIMEOUT',
      temporary: true,
    })
  })

  it('cuts a slow drip at the deadline even though bytes keep coming', { timeout: 10000 }, async () => {
    const quick = createHttpsClient({ ...base, timeoutMs: 300 })
    await assert.rejects(quick.get('https://mta-sts.example.test/drip'), { code: 'LINKSEC_FETCH_TIMEOUT' })
  })

  it("stops when the caller's signal aborts", { timeout: 10000 }, async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 50)
    await assert.rejects(client.get('https://mta-sts.example.test/hang', { signal: ac.signal }), {
      code: 'LINKSEC_FETCH_TIMEOUT',
    })
  })

  it('refuses bodies over the cap, declared or streamed', async () => {
    await assert.rejects(client.get('https://mta-sts.example.test/big'), {
      code: 'LINKSEC_FETCH_TOO_LARGE',
      message: /65536 bytes/,
    })
    await assert.rejects(client.get('https://mta-sts.example.test/big-chunked'), {
      code: 'LINKSEC_FETCH_TOO_LARGE',
    })
    const roomy = await client.get('https://mta-sts.example.test/big', { maxBytes: 128 * 1024 })
    assert.equal(roomy.body.length, 64 * 1024)
  })

  it('refuses redirects by default', async () => {
    await assert.rejects(client.get('https://mta-sts.example.test/moved'), {
      code: 'LINKSEC_FETCH_REDIRECT',
      temporary: false,
    })
  })

  it('follows https redirects on the same host when allowed', async () => {
    for (const p of ['/moved', '/moved-abs']) {
      const res = await client.get(`https://mta-sts.example.test${p}`, { maxRedirects: 2 })
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), 'ok')
      assert.equal(res.url, 'https://mta-sts.example.test/ok')
    }
  })

  it('refuses redirects to another host, to http, or too many', async () => {
    for (const p of ['/elsewhere', '/plain', '/loop']) {
      await assert.rejects(client.get(`https://mta-sts.example.test${p}`, { maxRedirects: 3 }), {
        code: 'LINKSEC_FETCH_REDIRECT',
      })
    }
  })

  it('fails TLS on a certificate for another name', async () => {
    await assert.rejects(client.get('https://wrongname.example.test/ok'), {
      code: 'LINKSEC_FETCH_TLS',
      temporary: true,
    })
  })

  it('fails TLS on a certificate from an unknown CA', async () => {
    await assert.rejects(client.get('https://untrusted.example.test/ok'), { code: 'LINKSEC_FETCH_TLS' })
  })

  it('fails TLS when the test CA is not added to the system roots', async () => {
    const systemOnly = createHttpsClient({ ...base, caFile: undefined })
    await assert.rejects(systemOnly.get('https://mta-sts.example.test/ok'), { code: 'LINKSEC_FETCH_TLS' })
  })

  it('tries the next address when one refuses the connection', async () => {
    const res = await client.get('https://two.example.test/ok')
    assert.equal(res.body.toString(), 'ok')
  })

  it('asks AAAA when a host has no A record', async () => {
    const before = dns.asked('v6only.example.test', 'AAAA')
    // Nothing listens on [::1] at this port, so the connection fails; what matters is the lookup.
    await assert.rejects(client.get('https://v6only.example.test/ok'), { code: 'LINKSEC_FETCH_CONNECT' })
    assert.equal(dns.asked('v6only.example.test', 'AAAA'), before + 1)
  })

  it('reports a connection reset while reading as LINKSEC_FETCH_CONNECT', async () => {
    await assert.rejects(client.get('https://mta-sts.example.test/reset'), { code: 'LINKSEC_FETCH_CONNECT' })
  })

  it('tells a name without addresses (permanent) from a failing resolver (temporary)', async () => {
    await assert.rejects(client.get('https://none.example.test/x'), {
      code: 'LINKSEC_FETCH_NO_ADDRESS',
      temporary: false,
    })
    await assert.rejects(client.get('https://broken.example.test/x'), {
      code: 'LINKSEC_FETCH_NO_ADDRESS',
      temporary: true,
    })
  })

  it('uses the port written in the URL over https_port', async () => {
    const wrongPort = createHttpsClient({ ...base, httpsPort: 1 })
    const res = await wrongPort.get(`https://mta-sts.example.test:${web.port}/ok`)
    assert.equal(res.body.toString(), 'ok')
  })

  it('refuses URLs that are not https', async () => {
    for (const u of ['http://mta-sts.example.test/', 'not a url', 'https://user:pw@mta-sts.example.test/']) {
      await assert.rejects(client.get(u), { code: 'LINKSEC_FETCH_BAD_URL', temporary: false }, u)
    }
  })

  it('builds one client per runtime from [net] and [resolver]', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-net-'))
    try {
      fs.copyFileSync(testCa().caFile, path.join(dir, 'ca.pem'))
      const raw = {
        resolver: { servers: dns.address },
        net: { ca_file: 'ca.pem', https_port: String(web.port), allow_private_addresses: 'true' },
      }
      const rt = createRuntime(parseConfig(raw, dir), { log: silentLogger })
      assert.equal(httpsClientFor(rt), httpsClientFor(rt))
      const res = await httpsClientFor(rt).get('https://mta-sts.example.test/ok')
      assert.equal(res.body.toString(), 'ok')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('HTTPS client configuration', () => {
  const dns = createDnsClient({ servers: ['127.0.0.1:9'], timeoutMs: 100, trustAd: false })
  const opts = { dns, allowPrivateAddresses: false, httpsPort: 443, timeoutMs: 100, maxBytes: 1024 }

  it('names [net] ca_file when the file is missing or not PEM', () => {
    assert.throws(() => createHttpsClient({ ...opts, caFile: '/nonexistent/ca.pem' }), {
      code: 'LINKSEC_CONFIG',
      message: /\[net\] ca_file/,
    })
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-net-'))
    try {
      fs.writeFileSync(path.join(dir, 'x.pem'), 'not a certificate')
      assert.throws(() => createHttpsClient({ ...opts, caFile: path.join(dir, 'x.pem') }), {
        code: 'LINKSEC_CONFIG',
      })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('parses targets: written port wins, default otherwise, IPv6 brackets dropped', () => {
    assert.deepEqual(parseTarget('https://A.Example/x?y=1', 8443), {
      url: 'https://a.example/x?y=1',
      host: 'a.example',
      port: 8443,
      path: '/x?y=1',
    })
    assert.equal(parseTarget('https://a.example:443/', 8443).port, 443)
    assert.equal(parseTarget('https://[::1]:9/', 8443).host, '::1')
  })
})
