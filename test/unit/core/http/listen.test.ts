import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatHostPort, parseHostPort } from '../../../../core/http/listen'
import { ConfigError } from '../../../../core/errors'

test('HOST:PORT, [IPv6]:PORT and HOST alone', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 })
  assert.deepEqual(parseHostPort('[::1]:8080'), { host: '::1', port: 8080 })
  assert.deepEqual(parseHostPort('localhost'), { host: 'localhost', port: 9464 })
  assert.deepEqual(parseHostPort('0.0.0.0', 80), { host: '0.0.0.0', port: 80 })
})

test('bad values are ConfigErrors that name the key and show an example', () => {
  for (const bad of ['', '127.0.0.1:99999', '::1:80', 'a b', 'http://x:1']) {
    assert.throws(
      () => parseHostPort(bad),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, bad)
        assert.match(e.message, /http\.listen.*127\.0\.0\.1:9464/)
        return true
      },
    )
  }
})

test('format round-trips', () => {
  for (const s of ['127.0.0.1:1', '[::1]:9464', 'mx.example.net:25'])
    assert.equal(formatHostPort(parseHostPort(s)), s)
})
