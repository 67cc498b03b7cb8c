import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { describe, it } from 'node:test'
import { RuntimeHolder } from '../../../plugins/config'
import { messageStep, type MessageStep } from '../../../core/message'
import { CONT, DENY, DENYSOFT, type HookMethod } from '../../../plugins/haraka'
import { DUTIES, register, registerDuties, shutdown } from '../../../plugins/linksec'
import { reject, CONTINUE } from '../../../core/verdict'
import { callNext, connectionWith, fakePlugin } from './fakes'

describe('register()', () => {
  it('registers every duty hook as a linksec_<duty>_<hook> method, plus data_post and the queue hooks', () => {
    const plugin = fakePlugin({ main: { mailboxes_tls_only: 'true' } })
    register.call(plugin)
    const hooks = plugin.hooks.map((h) => `${h.hook}:${h.method}:${h.priority}`)
    for (const expected of [
      'capabilities:linksec_declare_capabilities:50',
      'mail:linksec_declare_mail:-50',
      'data_post:linksec_linksec_data_post:0',
      'queue:linksec_linksec_queue:-100',
      'queue_outbound:linksec_linksec_queue_outbound:-100',
    ])
      assert.ok(hooks.includes(expected), `${expected} in ${hooks.join(', ')}`)
    for (const h of plugin.hooks) assert.equal(typeof plugin[h.method], 'function', h.method)
    assert.ok(DUTIES.length >= 2)
  })
})

describe('the daily TLS-report timer in Haraka', () => {
  it('starts at register() and is stopped at shutdown(), so a reloaded plugin leaves no timer on a closed engine', (t) => {
    const saved = process.env.HARAKA
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-haraka-timer-'))
    process.env.HARAKA = dir
    const cleared = t.mock.method(globalThis, 'clearInterval')
    try {
      const plugin = fakePlugin({ tls: { self_signed: 'false' } })
      register.call(plugin)
      assert.equal(typeof plugin.linksec_stop_reports, 'function')
      shutdown.call(plugin)
      assert.equal(plugin.linksec_stop_reports, undefined)
      assert.equal(cleared.mock.callCount(), 1, 'the hourly interval cleared')
      shutdown.call(plugin) // twice (Haraka's reload, then its exit): nothing more to stop
      assert.equal(cleared.mock.callCount(), 1)
    } finally {
      if (saved === undefined) delete process.env.HARAKA
      else process.env.HARAKA = saved
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the data_post pipeline', () => {
  function setup(steps: MessageStep[]) {
    const plugin = fakePlugin({ main: { authserv_id: 'mx.test' } })
    const holder = new RuntimeHolder(plugin, '/x')
    registerDuties(plugin, holder, DUTIES, steps)
    const call = (name: string, conn: unknown) =>
      callNext((next) => (plugin[name] as HookMethod).call(plugin, next, conn))
    return { plugin, call }
  }

  it('first non-continue verdict decides; later steps do not run; no header is staged', async () => {
    const ran: string[] = []
    const { call } = setup([
      messageStep(
        'a',
        () => (ran.push('a'), { verdict: CONTINUE, headers: [{ op: 'prepend', name: 'X-A', value: '1' }] }),
      ),
      messageStep('b', () => (ran.push('b'), { verdict: reject(550, '5.7.1', 'no', 'test'), headers: [] })),
      messageStep('c', () => (ran.push('c'), { verdict: CONTINUE, headers: [] })),
    ])
    const conn = connectionWith()
    const r = await call('linksec_linksec_data_post', conn)
    assert.equal(r.code, DENY)
    assert.deepEqual(ran, ['a', 'b'])
    await call('linksec_linksec_queue', conn)
    assert.deepEqual(conn.transaction.header.get_all('X-A'), [])
  })

  it('accepted: continue, and the staged headers are written at queue time', async () => {
    const { call } = setup([
      messageStep('a', async () => ({
        verdict: CONTINUE,
        headers: [{ op: 'prepend', name: 'X-A', value: '1' }],
      })),
    ])
    const conn = connectionWith()
    assert.equal((await call('linksec_linksec_data_post', conn)).code, CONT)
    assert.deepEqual(conn.transaction.header.get_all('X-A'), [])
    assert.equal((await call('linksec_linksec_queue', conn)).code, undefined)
    assert.deepEqual(conn.transaction.header.get_all('X-A'), ['1'])
  })

  it('a step that throws answers DENYSOFT 451', async () => {
    const { call } = setup([messageStep('a', () => { throw new Error('x') })]) // prettier-ignore
    const r = await call('linksec_linksec_data_post', connectionWith())
    assert.equal(r.code, DENYSOFT)
    assert.equal((r.msg as { code: number }).code, 451)
  })
})
