import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { loadConfig, parseConfig, PACKAGE_CONFIG_DIR, SCHEMA } from '../../../../core/config'
import { ConfigError } from '../../../../core/errors'

function tmpConfig(ini: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-cfg-'))
  fs.writeFileSync(path.join(dir, 'linksec.ini'), ini)
  return dir
}

test('the shipped linksec.ini resolves to the schema defaults', () => {
  const cfg = loadConfig(PACKAGE_CONFIG_DIR)
  for (const [sec, keys] of Object.entries(SCHEMA)) {
    for (const [key, spec] of Object.entries(keys)) {
      if (sec === 'main' && key === 'authserv_id') continue
      assert.deepEqual((cfg as never)[sec][key], spec.default, `[${sec}] ${key}`)
    }
  }
  assert.equal(cfg.main.authserv_id, os.hostname())
})

test('the shipped file documents every key of the schema', () => {
  const text = fs.readFileSync(path.join(PACKAGE_CONFIG_DIR, 'linksec.ini'), 'utf8')
  for (const [sec, keys] of Object.entries(SCHEMA)) {
    assert.match(text, new RegExp(`^\\[${sec}\\]$`, 'm'), `section [${sec}]`)
    for (const key of Object.keys(keys)) assert.match(text, new RegExp(`^${key}=`, 'm'), `[${sec}] ${key}`)
  }
})

test('pinned defaults', () => {
  const cfg = parseConfig({}, '/x')
  assert.equal(cfg.main.level, 3)
  assert.equal(cfg.milter.listen, 'inet:127.0.0.1:8891')
  assert.equal(cfg.socketmap.listen, 'inet:127.0.0.1:8461')
  assert.equal(cfg.socketmap.name, 'linksec')
  assert.equal(cfg.http.listen, '127.0.0.1:9464')
  assert.equal(cfg.net.allow_private_addresses, false)
  assert.equal(cfg.net.https_port, 443)
  assert.deepEqual(cfg.resolver.servers, [])
  assert.equal(cfg.verify.on_fail, 'reject')
  assert.equal(cfg.sign.enabled, false)
  assert.deepEqual(cfg.sign.trusted_networks, [])
  assert.equal(cfg.sign.secret_dir, 'secret')
  assert.equal(cfg.sign.protected_headers, false)
  assert.equal(cfg.sign.max_message_bytes, 32 * 1024 * 1024)
  assert.equal(cfg.verify.max_message_bytes, 32 * 1024 * 1024)
  assert.equal(cfg.http.recipients_api, true)
  assert.deepEqual(cfg.http.recipients_allow, [])
  assert.equal(cfg.http.recipients_rate, 60)
  assert.equal(cfg.http.recipients_burst, 20)
  assert.equal(cfg.send.relay, '')
  assert.equal(cfg.send.port, 25)
  assert.equal(cfg.send.encrypt, 'off')
  assert.equal(cfg.send.timeout_ms, 60000)
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.main))
})

test('a key missing from a directory takes its default; values are typed', () => {
  const cfg = loadConfig(
    tmpConfig(
      '[main]\nlevel=4\n[resolver]\nservers=127.0.0.1:5353, [::1]:53\n[net]\nallow_private_addresses=true\n',
    ),
  )
  assert.equal(cfg.main.level, 4)
  assert.deepEqual(cfg.resolver.servers, ['127.0.0.1:5353', '[::1]:53'])
  assert.equal(cfg.net.allow_private_addresses, true)
  assert.equal(cfg.milter.listen, 'inet:127.0.0.1:8891')
})

for (const [ini, mention] of [
  ['[main]\nlevel=7\n', /\[main\] level: 7 is out of range; write a number between 0 and 4/],
  ['[main]\nlevle=3\n', /\[main\] levle is not a known key/],
  ['[milter]\nlisten=127.0.0.1:8891\n', /\[milter\] listen: .* write inet:HOST:PORT/],
  [
    '[verify]\non_fail=bounce\n',
    /\[verify\] on_fail: "bounce" is not allowed; write one of: reject, quarantine, tag/,
  ],
  ['[resolver]\nservers=not a server!\n', /\[resolver\] servers/],
  ['[resolver]\nservers=dns.example.net:53\n', /\[resolver\] servers: .*an address, not a name/],
  ['[nope]\nx=1\n', /\[nope\] is not a linksec section/],
] as const) {
  test(`bad config names the key and the fix: ${JSON.stringify(ini)}`, () => {
    assert.throws(
      () => loadConfig(tmpConfig(ini)),
      (e: unknown) => e instanceof ConfigError && mention.test(e.message),
    )
  })
}

test('a missing configuration directory is a clear error', () => {
  assert.throws(() => loadConfig('/nonexistent/linksec'), /does not exist; pass --config DIR/)
})

test('a boolean typo is an error, not silently false', () => {
  assert.throws(
    () => loadConfig(tmpConfig('[declare]\nehlo=maybe\n')),
    /\[declare\] ehlo: "maybe" is not a boolean; write true or false/,
  )
  const cfg = loadConfig(tmpConfig('[declare]\nehlo=false\n[net]\nallow_private_addresses=yes\n'))
  assert.equal(cfg.declare.ehlo, false)
  assert.equal(cfg.net.allow_private_addresses, true)
})
