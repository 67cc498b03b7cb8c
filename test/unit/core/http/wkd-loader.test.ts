import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadWkdHandler } from '../../../../core/http/wkd-loader'
import { testRuntime } from './helpers'

test('[http] wkd = false loads nothing', () => {
  const { rt } = testRuntime({ http: { wkd: false } })
  assert.equal(loadWkdHandler(rt, './no-such-module'), undefined)
})

test('a missing WKD module is a warning, not a failure', () => {
  const { rt, lines } = testRuntime()
  assert.equal(loadWkdHandler(rt, './no-such-module'), undefined)
  assert.ok(lines.some((l) => l.includes('WKD is not built')))
})

test('a module without createWkdHandler is a warning', () => {
  const { rt, lines } = testRuntime()
  assert.equal(loadWkdHandler(rt, './listen'), undefined)
  assert.ok(lines.some((l) => l.includes('no createWkdHandler')))
})
