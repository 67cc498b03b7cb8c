import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { guarded } from '../../../plugins/guard'
import { CONT, DENYSOFT } from '../../../plugins/haraka'
import { callNext, fakePlugin, runtimeWith } from './fakes'

type Dsn = { code: number; reply: string }

async function errorCount(rt: ReturnType<typeof runtimeWith>, stage: string): Promise<number> {
  const m = await rt.metrics.internalErrors.get()
  return m.values.find((v) => v.labels.stage === stage)?.value ?? 0
}

describe('guarded', () => {
  it('passes a normal answer through', async () => {
    const rt = runtimeWith()
    const hook = guarded(
      'mail',
      (_c, next) => next(CONT),
      () => rt,
    )
    const r = await callNext((next) => hook.call(fakePlugin(), next, {}))
    assert.equal(r.code, CONT)
    assert.equal(await errorCount(rt, 'mail'), 0)
  })

  it('turns a throw into DENYSOFT 451 4.3.0 and counts it', async () => {
    const rt = runtimeWith()
    const hook = guarded('data_post', () => { throw new Error('boom') }, () => rt) // prettier-ignore
    const r = await callNext((next) => hook.call(fakePlugin(), next, {}))
    assert.equal(r.code, DENYSOFT)
    assert.equal((r.msg as Dsn).code, 451)
    assert.match((r.msg as Dsn).reply, /^4\.3\.0 /)
    assert.equal(await errorCount(rt, 'data_post'), 1)
  })

  it('turns a rejected promise into DENYSOFT as well', async () => {
    const rt = runtimeWith()
    const hook = guarded(
      'queue',
      async () => Promise.reject(new Error('later')),
      () => rt,
    )
    const r = await callNext((next) => hook.call(fakePlugin(), next, {}))
    assert.equal(r.code, DENYSOFT)
    assert.equal(await errorCount(rt, 'queue'), 1)
  })

  it('never calls next twice: a failure after replying is only logged and counted', async () => {
    const rt = runtimeWith()
    const calls: (number | undefined)[] = []
    const hook = guarded('mail', (_c, next) => { next(CONT); throw new Error('after') }, () => rt) // prettier-ignore
    hook.call(fakePlugin(), (code) => calls.push(code), {})
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(calls, [CONT])
    assert.equal(await errorCount(rt, 'mail'), 1)
  })

  it('still answers DENYSOFT when the runtime itself cannot be had', async () => {
    const plugin = fakePlugin()
    const hook = guarded('mail', (_c, next) => next(), () => { throw new Error('no runtime') }) // prettier-ignore
    const r = await callNext((next) => hook.call(plugin, next, {}))
    assert.equal(r.code, DENYSOFT)
    assert.ok(
      plugin.lines.some((l) => /logerror .*no runtime/.test(l)),
      plugin.lines.join('\n'),
    )
  })
})
