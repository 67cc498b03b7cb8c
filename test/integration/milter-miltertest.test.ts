/**
 * miltertest (OpenDKIM's libmilter-based MTA simulator) drives `linksec
 * serve` through every stage of a transaction and checks the actions it
 * returns: test/fixtures/milter/linksec.lua, once with everything Postfix
 * offers (linksec switches stages off and asks for no replies) and once with
 * nothing offered (every stage sent and answered).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { REPO_ROOT, startLinksecServe, type ServeInstance } from '../helpers/postfix'
import { needTools, which } from '../helpers/tools'

const SCRIPT = path.join(REPO_ROOT, 'test', 'fixtures', 'milter', 'linksec.lua')
const AUTHSERV = 'mx.linksec.test'

function miltertest(
  serve: ServeInstance,
  vars: Record<string, string>,
): { status: number | null; output: string } {
  const [, host, port] = serve.milterAddress.split(':')
  const defines = Object.entries({ sock: `inet:${port}@${host}`, authserv: AUTHSERV, ...vars }).flatMap(
    ([k, v]) => ['-D', `${k}=${v}`],
  )
  const r = spawnSync('miltertest', ['-s', SCRIPT, ...defines], { encoding: 'utf8', timeout: 60000 })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

describe('miltertest drives linksec serve', () => {
  let serve: ServeInstance | undefined
  before(async () => {
    if (which('miltertest'))
      serve = await startLinksecServe({ ini: { main: { authserv_id: AUTHSERV }, log: { level: 'warn' } } })
  })
  after(async () => {
    await serve?.stop()
  })

  const cases: Array<[string, Record<string, string>, RegExp]> = [
    [
      'plain message: x-tls=none inserted at index 0',
      {},
      /inserted Authentication-Results: mx\.linksec\.test; x-tls=none/,
    ],
    [
      'STARTTLS macros: x-tls=pass with version and cipher',
      { tls: '1' },
      /x-tls=pass smtp\.version=TLSv1\.3/,
    ],
    ['tagged plaintext: 550 5.7.10 reply', { tag: '3', expect: 'reject' }, /rejected with 550 5\.7\.10/],
    ['forged Authentication-Results: deleted', { forged: '1' }, /PASS/],
  ]
  for (const offer of ['all', 'none']) {
    for (const [name, vars, want] of cases) {
      it(`${name} (MTA offers ${offer})`, (t) => {
        if (!needTools(t, { miltertest: 'miltertest' })) return
        const r = miltertest(serve!, { offer, ...vars })
        assert.equal(r.status, 0, r.output)
        assert.match(r.output, want)
        assert.match(r.output, /PASS/)
      })
    }
  }

  it('the script fails when the milter does not do what it checks', (t) => {
    if (!needTools(t, { miltertest: 'miltertest' })) return
    const r = miltertest(serve!, { authserv: 'someone-else.example' })
    assert.equal(r.status, 1, r.output)
    assert.match(r.output, /FAIL: Authentication-Results someone-else\.example; x-tls=none not inserted/)
  })
})
