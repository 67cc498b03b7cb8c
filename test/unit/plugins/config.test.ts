import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { formatFields, harakaLogger, harakaMetrics, RuntimeHolder } from '../../../plugins/config'
import { fakePlugin } from './fakes'

describe('RuntimeHolder', () => {
  it('parses linksec.ini through the plugin config and resolves paths against the config dir', () => {
    const holder = new RuntimeHolder(
      fakePlugin({ main: { level: '2', authserv_id: 'mx.example' } }),
      '/etc/haraka/config',
    )
    assert.equal(holder.current().config.main.level, 2)
    assert.equal(holder.current().config.dir, '/etc/haraka/config')
  })

  it('throws ConfigError at start on a bad file (Haraka then refuses to start)', () => {
    assert.throws(
      () => new RuntimeHolder(fakePlugin({ main: { level: '9' } }), '/x'),
      /\[main\] level: 9 is out of range/,
    )
  })

  it('reloads when haraka-config calls back, keeps the old config on a bad reload, logs both', () => {
    const plugin = fakePlugin({ main: { declaration_ttl: '600' } })
    const holder = new RuntimeHolder(plugin, '/x')
    plugin.raw = { main: { declaration_ttl: '900' } }
    plugin.onChange!()
    assert.equal(holder.current().config.main.declaration_ttl, 900)
    plugin.raw = { main: { declaration_ttl: 'soon' } }
    plugin.onChange!()
    assert.equal(holder.current().config.main.declaration_ttl, 900)
    assert.ok(
      plugin.lines.some((l) => /logerror linksec configuration NOT reloaded.*declaration_ttl/.test(l)),
      plugin.lines.join('\n'),
    )
  })

  it('shares one metrics registry across runtimes of the process', () => {
    const plugin = fakePlugin({})
    const a = new RuntimeHolder(plugin, '/x').current()
    const b = new RuntimeHolder(plugin, '/x').current()
    assert.equal(a.metrics, b.metrics)
    assert.equal(a.metrics, harakaMetrics())
  })
})

describe('harakaLogger', () => {
  it('writes "msg key=value …", quoting values with blanks and non-strings, leaving out undefined', () => {
    const plugin = fakePlugin()
    harakaLogger(plugin).info('decision', {
      verdict: 'reject',
      reason: 'no TLS here',
      code: 550,
      level: undefined,
      extra: { a: 1 },
    })
    assert.deepEqual(plugin.lines, [
      'loginfo decision verdict=reject reason="no TLS here" code=550 extra={"a":1}',
    ])
  })

  it('adds nothing for no fields or only undefined ones', () => {
    assert.equal(formatFields(undefined), '')
    assert.equal(formatFields({}), '')
    assert.equal(formatFields({ a: undefined }), '')
  })
})
