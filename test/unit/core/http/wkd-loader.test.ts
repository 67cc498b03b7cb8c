import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadWkdHandler } from '../../../../core/http/wkd-loader'
import { startHttpService } from '../../../../core/http/server'
import { request, testRuntime } from './helpers'

test('[http] wkd = false loads no WKD handler', () => {
  const { rt } = testRuntime({ http: { wkd: false } })
  assert.equal(loadWkdHandler(rt), undefined)
})

test('by default the listener answers WKD paths (policy file) and still 404s the rest', async () => {
  const { rt } = testRuntime()
  assert.equal(typeof loadWkdHandler(rt), 'function')
  const svc = await startHttpService(rt)
  try {
    await request(svc.port, '/.well-known/openpgpkey/example.net/policy')
    const counted = (await rt.metrics.wkdRequests.get()).values
    assert.equal(counted.length, 1, 'the WKD handler took the path and counted it')
    assert.equal(counted[0]!.labels.layout, 'advanced')
    assert.equal((await request(svc.port, '/nothing-here')).status, 404)
  } finally {
    await svc.close(100)
  }
})

test('with [http] wkd = false the WKD paths are 404', async () => {
  const { rt } = testRuntime({ http: { wkd: false } })
  const svc = await startHttpService(rt)
  try {
    assert.equal((await request(svc.port, '/.well-known/openpgpkey/example.net/policy')).status, 404)
  } finally {
    await svc.close(100)
  }
})
