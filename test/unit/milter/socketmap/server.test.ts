import { test } from 'node:test'
import assert from 'node:assert/strict'
import { defaultConfig } from '../../../../core/config'
import { silentLogger } from '../../../../core/log'
import { createRuntime } from '../../../../core/runtime'
import { startSocketmapService } from '../../../../milter/socketmap/server'
import { counterValue, harness, STS_POLICY } from '../../core/policy/fakes'
import { SocketmapClient } from './client'

async function start(t: import('node:test').TestContext, deadlineMs?: number) {
  const h = harness()
  const rt = createRuntime(defaultConfig(), { log: silentLogger, metrics: h.metrics, now: h.clock.now })
  const svc = await startSocketmapService(rt, {
    listen: 'inet:127.0.0.1:0',
    resolver: h.resolver,
    deadlineMs,
  })
  t.after(() => svc.close(100))
  const port = Number(/:(\d+)$/.exec(svc.address)![1])
  return { h, svc, port }
}

test('socketmap: many requests on one connection, answered in order', async (t) => {
  const { h, port } = await start(t)
  h.dns.txt('_linksec.level2.test', ['v=LINKSEC1; level=2; ttl=600'])
  h.dns.txt('_mta-sts.sts.test', ['v=STSv1; id=1;'])
  h.https.serve('https://mta-sts.sts.test/.well-known/mta-sts.txt', STS_POLICY('enforce', ['*.sts.test']))
  const c = await SocketmapClient.connect(port)
  t.after(() => c.close())
  c.send(
    'linksec level2.test',
    'linksec nothing.test',
    'linksec sts.test',
    'linksec [mx.sts.test]:25',
    'linksec [192.0.2.1]:25',
    'other sts.test',
  )
  assert.deepEqual(await c.read(6), [
    'OK encrypt',
    'NOTFOUND ',
    'OK secure match=.sts.test servername=hostname',
    'NOTFOUND ',
    'NOTFOUND ',
    'PERM unknown map "other"; this server answers socketmap:inet:HOST:PORT:linksec',
  ])
  assert.equal(await c.query('linksec', 'LEVEL2.test.'), 'OK encrypt')
  assert.equal(await counterValue(h.metrics, 'linksec_socketmap_requests_total', { result: 'ok' }), 3)
  assert.equal(await counterValue(h.metrics, 'linksec_socketmap_requests_total', { result: 'perm' }), 1)
})

test('socketmap: a failed lookup with nothing cached is TEMP', async (t) => {
  const { h, port } = await start(t)
  h.dns.fail('broken.test', 'MX')
  const c = await SocketmapClient.connect(port)
  t.after(() => c.close())
  assert.match(
    await c.query('linksec', 'broken.test'),
    /^TEMP policy lookup for broken.test failed \(dane: DNS lookup of broken.test MX failed/,
  )
})

test('socketmap: a lookup past the deadline is TEMP, and the next ask gets the cached answer', async (t) => {
  const { h, port } = await start(t, 100)
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  h.dns.set('_linksec.slow.test', 'TXT', async () => {
    await gate
    return {
      rcode: 'NOERROR',
      authenticated: false,
      records: [{ type: 'TXT', name: '_linksec.slow.test', ttl: 300, text: 'v=LINKSEC1; level=3' }],
    }
  })
  const c = await SocketmapClient.connect(port)
  t.after(() => c.close())
  assert.match(await c.query('linksec', 'slow.test'), /^TEMP policy lookup for slow.test took over 100 ms/)
  release()
  await new Promise((r) => setTimeout(r, 20))
  assert.equal(await c.query('linksec', 'slow.test'), 'OK encrypt')
})

test('socketmap: broken framing closes the connection; malformed requests get PERM', async (t) => {
  const { port } = await start(t)
  const c = await SocketmapClient.connect(port)
  t.after(() => c.close())
  c.send('no-space-here')
  assert.match((await c.read(1))[0]!, /^PERM socketmap request is not/)
  c.sendRaw('12x:garbage')
  assert.equal(await c.waitClosed(), true)
  const big = await SocketmapClient.connect(port)
  t.after(() => big.close())
  big.sendRaw(`20000:`)
  assert.equal(await big.waitClosed(), true)
})

test('socketmap: close() ends idle connections and stops listening', async (t) => {
  const { svc, port } = await start(t)
  const c = await SocketmapClient.connect(port)
  assert.equal(await c.query('linksec', 'x.test'), 'NOTFOUND ')
  await svc.close(500)
  assert.equal(await c.waitClosed(), true)
  await assert.rejects(SocketmapClient.connect(port))
})
