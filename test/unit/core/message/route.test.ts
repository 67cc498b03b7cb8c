/**
 * The route step (core/message/route.ts) as the milter runs it, over a real policy
 * engine whose only sources are the static list and learned declarations:
 * [policy] txt/mta_sts/dane are off, so nothing leaves the machine.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { parseConfig } from '../../../../core/config'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime } from '../../../../core/runtime'
import { messageView, routeStep, type MessageView } from '../../../../core/message'
import type { Runtime } from '../../../../core/runtime'
import { MILTER_PROFILE } from '../../../../milter/app'

const routePolicy = { run: (m: MessageView, rt: Runtime) => Promise.resolve(routeStep.run(m, rt)) }

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-route-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))
fs.writeFileSync(
  path.join(dir, 'linksec.domains.json'),
  JSON.stringify({
    policies: {
      'weak.test': { mode: 'testing', level: 1 },
      'strong.test': { mode: 'enforce', mxs: ['.strong.test'], level: 4 },
    },
  }),
)

function runtime(extra: Record<string, Record<string, string>> = {}) {
  const config = parseConfig(
    { main: { authserv_id: 'mx.test' }, policy: { txt: 'false', mta_sts: 'false', dane: 'false' }, ...extra },
    dir,
  )
  return createRuntime(config, { log: silentLogger, metrics: createMetrics({ processMetrics: false }) })
}

function msg(rcpts: string[], headers: Array<[string, string]>, requiretls = false): MessageView {
  const hs = headers.map(([name, value]) => ({ name, value }))
  const all = (n: string) => hs.filter((h) => h.name.toLowerCase() === n.toLowerCase()).map((h) => h.value)
  return messageView(
    {
      client: {},
      submitter: {},
      tls: { version: 'TLSv1.3' },
      sender: '<alice@sender.test>',
      requiretls,
      recipients: rcpts.map((address) => `<${address}>`),
      headerValues: all,
      message: () => Promise.reject(new Error('the route step reads no body')),
      bodyTruncated: false,
    },
    MILTER_PROFILE,
  )
}

describe('milter route policy', () => {
  it('routes N <= 3 to encrypt and N = 4 / REQUIRETLS to secure, and counts it', async () => {
    const rt = runtime()
    const three = await routePolicy.run(msg(['b@strong.test'], [['Link-Security-Required', '3']]), rt)
    assert.equal(three.verdict.action, 'continue')
    assert.deepEqual(three.headers, [{ op: 'append', name: 'X-Linksec-Route', value: 'encrypt; level=3' }])
    const four = await routePolicy.run(msg(['b@strong.test'], [['Link-Security-Required', '4']]), rt)
    assert.deepEqual(four.headers, [{ op: 'append', name: 'X-Linksec-Route', value: 'secure; level=4' }])
    const rtls = await routePolicy.run(msg(['b@strong.test'], [], true), rt)
    assert.deepEqual(rtls.headers, [
      { op: 'append', name: 'X-Linksec-Route', value: 'secure; level=requiretls' },
    ])
    const text = await rt.metrics.registry.metrics()
    assert.match(text, /linksec_tagged_messages_total\{level="4",outcome="routed"\} 1/)
  })

  it('leaves untagged and TLS-Required: No mail to normal routing', async () => {
    const rt = runtime()
    assert.deepEqual((await routePolicy.run(msg(['b@weak.test'], []), rt)).headers, [])
    const no = await routePolicy.run(
      msg(
        ['b@weak.test'],
        [
          ['Link-Security-Required', '4'],
          ['TLS-Required', 'No'],
        ],
      ),
      rt,
    )
    assert.equal(no.verdict.action, 'continue')
    assert.deepEqual(no.headers, [])
  })

  it('rejects 550 5.7.10 naming a recipient domain known to be below the level', async () => {
    const rt = runtime()
    const r = await routePolicy.run(
      msg(['a@strong.test', 'b@weak.test', 'c@unknown.test'], [['Link-Security-Required', '2']]),
      rt,
    )
    assert.equal(r.verdict.action, 'reject')
    assert.equal(r.verdict.enhanced, '5.7.10')
    assert.match(r.verdict.text!, /weak\.test \(level 1\)/)
    assert.doesNotMatch(r.verdict.text!, /strong\.test|unknown\.test/)
  })

  it('removes route headers that came with the message, highest index first', async () => {
    const rt = runtime()
    const r = await routePolicy.run(
      msg(
        ['b@strong.test'],
        [
          ['X-Linksec-Route', 'encrypt'],
          ['Subject', 'x'],
          ['x-linksec-route', 'secure'],
        ],
      ),
      rt,
    )
    assert.deepEqual(r.headers, [
      { op: 'delete', name: 'X-Linksec-Route', index: 2 },
      { op: 'delete', name: 'X-Linksec-Route', index: 1 },
    ])
  })

  it('obeys [enforce] enabled=false and [inbound] reject_weak_recipients=false', async () => {
    const off = runtime({ enforce: { enabled: 'false' } })
    assert.deepEqual(
      (await routePolicy.run(msg(['b@weak.test'], [['Link-Security-Required', '3']]), off)).headers,
      [],
    )
    const lax = runtime({ inbound: { reject_weak_recipients: 'false' } })
    const r = await routePolicy.run(msg(['b@weak.test'], [['Link-Security-Required', '3']]), lax)
    assert.equal(r.verdict.action, 'continue')
    assert.equal(r.headers.length, 1)
  })
})
