/**
 * A real Haraka with linksec serves /metrics and /healthz on `[http] listen`
 * (Haraka runs no HTTP server of its own here): the messages swaks sends are
 * counted under adapter="haraka", and the exposition passes promtool.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { startHaraka } from '../helpers/haraka'
import { freePort, waitForPort } from '../helpers/ports'
import { swaks } from '../helpers/swaks'
import { needTools } from '../helpers/tools'

function sample(exposition: string, series: string): number {
  const line = exposition.split('\n').find((l) => l.startsWith(series + ' '))
  return line ? Number(line.slice(series.length + 1)) : 0
}

test('Haraka + linksec: /metrics counts each message by verdict and passes promtool', async (t) => {
  if (!needTools(t, { swaks: 'swaks', openssl: 'openssl', promtool: 'prometheus' })) return
  const httpPort = await freePort()
  const h = await startHaraka({ linksec: { http: { listen: `127.0.0.1:${httpPort}` } } })
  try {
    await waitForPort(httpPort)
    const plain = await swaks({ port: h.port })
    assert.equal(plain.status, 0, plain.out)
    const tagged = await swaks({ port: h.port, headers: { 'Link-Security-Required': '3' } })
    assert.match(tagged.out, /<\*\* +550[ -]5\.7\.10 /, tagged.out)

    const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`)
    assert.equal(res.status, 200)
    const body = await res.text()
    assert.equal(sample(body, 'linksec_messages_total{adapter="haraka",verdict="reject"}'), 1)
    const all = body
      .split('\n')
      .filter((l) => l.startsWith('linksec_messages_total{adapter="haraka"'))
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0)
    assert.equal(all, 2, 'two messages, two decisions')

    const lint = spawnSync('promtool', ['check', 'metrics'], {
      input: body,
      encoding: 'utf8',
      timeout: 30_000,
    })
    assert.equal(`${lint.stdout}${lint.stderr}`.trim(), '')
    assert.equal(lint.status, 0)

    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`)
    assert.equal(health.status, 200)
    assert.match(await health.text(), /"name":\s*"http"/)
    assert.match(h.log(), /linksec metrics listener started/)
  } finally {
    await h.stop()
  }
})
