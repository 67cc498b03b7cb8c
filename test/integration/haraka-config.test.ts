/**
 * Real Haraka: what linksec declares follows its configuration, each duty can
 * be switched off, config reloads (good and bad) behave, a bad file stops
 * start-up, and an internal error answers 451 with nothing queued.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import {
  startHaraka,
  startHarakaExpectingFailure,
  REPO_ROOT,
  TEST_AUTHSERV_ID,
  type HarakaInstance,
  type IniSections,
} from '../helpers/haraka'
import { lastEhloKeywords, requireTlsFrom, serverReplies, swaks } from '../helpers/swaks'
import { needTools } from '../helpers/tools'

const TOOLS = { swaks: 'swaks', openssl: 'openssl' }
const RELOADED = /linksec configuration reloaded/g
const NOT_RELOADED = /linksec configuration NOT reloaded/g

function count(h: HarakaInstance, re: RegExp): number {
  return h.log().match(re)?.length ?? 0
}

/** Rewrites linksec.ini and waits (bounded) for the plugin's reload callback to log the outcome. */
async function reload(h: HarakaInstance, ini: IniSections | string, outcome = RELOADED): Promise<void> {
  const seen = count(h, outcome)
  h.writeLinksecIni(ini)
  const end = Date.now() + 15_000
  while (count(h, outcome) <= seen) {
    if (Date.now() > end) throw new Error(`no "${outcome.source}" in the log after rewriting linksec.ini`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function ehlo(h: HarakaInstance, tls = false): Promise<string[]> {
  return lastEhloKeywords((await swaks({ port: h.port, tls, quitAfter: 'EHLO' })).out)
}

function linksecKeyword(kw: string[]): string | undefined {
  return kw.find((k) => k.startsWith('LINKSEC'))
}

describe(
  'Haraka + linksec: declarations follow the configuration (live reloads)',
  { concurrency: false },
  () => {
    let h: HarakaInstance | undefined
    const ready = (t: TestContext): boolean => needTools(t, TOOLS) && h !== undefined

    before(async () => {
      h = await startHaraka({ linksec: { main: { mailboxes_tls_only: true } } })
    })
    after(async () => h?.stop())

    it('level=4 with every duty on -> LINKSEC 4', async (t) => {
      if (!ready(t)) return
      await reload(h!, { main: { level: 4, mailboxes_tls_only: true, declaration_ttl: 3600 } })
      assert.equal(linksecKeyword(await ehlo(h!)), 'LINKSEC 4 ttl=3600')
    })

    it('level=4 but [enforce] peer_level=false -> LINKSEC 3 (never more than it enforces)', async (t) => {
      if (!ready(t)) return
      await reload(h!, { main: { level: 4, mailboxes_tls_only: true }, enforce: { peer_level: false } })
      assert.equal(linksecKeyword(await ehlo(h!)), 'LINKSEC 3 ttl=86400')
    })

    it('mailboxes_tls_only=false -> LINKSEC 1, and still REQUIRETLS under TLS ([enforce] enabled)', async (t) => {
      if (!ready(t)) return
      await reload(h!, { main: { mailboxes_tls_only: false } })
      assert.equal(linksecKeyword(await ehlo(h!)), 'LINKSEC 1 ttl=86400')
      assert.ok((await ehlo(h!, true)).includes('REQUIRETLS'))
    })

    it('[enforce] enabled=false -> LINKSEC 2, no REQUIRETLS under TLS, which is then refused 555 5.5.4', async (t) => {
      if (!ready(t)) return
      await reload(h!, { main: { mailboxes_tls_only: true }, enforce: { enabled: false } })
      assert.equal(linksecKeyword(await ehlo(h!)), 'LINKSEC 2 ttl=86400')
      const kw = await ehlo(h!, true)
      assert.ok(!kw.includes('REQUIRETLS'), kw.join(' | '))
      const r = await swaks({
        port: h!.port,
        tls: true,
        from: requireTlsFrom('a@example.org'),
        quitAfter: 'MAIL',
      })
      assert.ok(
        serverReplies(r.out).some((l) => l.startsWith('555 5.5.4 REQUIRETLS is not offered')),
        r.out,
      )
    })

    it('[declare] ehlo=false -> no LINKSEC keyword; requiretls=false -> no REQUIRETLS', async (t) => {
      if (!ready(t)) return
      await reload(h!, { main: { mailboxes_tls_only: true }, declare: { ehlo: false, requiretls: false } })
      assert.equal(linksecKeyword(await ehlo(h!)), undefined)
      const kw = await ehlo(h!, true)
      assert.equal(linksecKeyword(kw), undefined)
      assert.ok(!kw.includes('REQUIRETLS'), kw.join(' | '))
    })

    it('a bad reload is refused and logged; the running configuration stays', async (t) => {
      if (!ready(t)) return
      await reload(h!, { main: { mailboxes_tls_only: true, declaration_ttl: 7200 } })
      await reload(h!, '[main]\nlevel=9\n', NOT_RELOADED)
      assert.match(h!.log(), /NOT reloaded.*\[main\] level: 9 is out of range/)
      assert.equal(linksecKeyword(await ehlo(h!)), 'LINKSEC 3 ttl=7200')
    })
  },
)

describe('Haraka + linksec: inbound duties switched off', { concurrency: false }, () => {
  let h: HarakaInstance | undefined
  const ready = (t: TestContext): boolean => needTools(t, TOOLS) && h !== undefined

  before(async () => {
    h = await startHaraka({
      linksec: {
        main: { mailboxes_tls_only: true },
        inbound: { tls_results: false, reject_tagged_plaintext: false },
        // The verify duty writes an A-R field of its own (x-openpgp); this test is about the rest.
        verify: { enabled: false },
      },
    })
  })
  after(async () => h?.stop())

  it('accepts a tagged plaintext message and adds no Authentication-Results of its own', async (t) => {
    if (!ready(t)) return
    const r = await swaks({
      port: h!.port,
      headers: { Subject: 'duties-off', 'Link-Security-Required': '3' },
    })
    assert.ok(
      serverReplies(r.out).some((l) => /^250 .*queued/.test(l)),
      r.out,
    )
    const [msg] = await h!.waitForQueued(1)
    assert.ok(msg!.raw.includes('duties-off'))
    assert.ok(!/^Authentication-Results:/im.test(msg!.raw), msg!.raw)
  })
})

describe('Haraka + linksec: internal errors and bad configuration', { concurrency: false }, () => {
  let h: HarakaInstance | undefined
  const ready = (t: TestContext): boolean => needTools(t, TOOLS) && h !== undefined

  before(async () => {
    h = await startHaraka({
      plugins: ['tls', 'test_break_headers', 'linksec', 'test_sink'],
      // A genuine fault inside Haraka's objects: reading headers throws once the
      // message carries X-Test-Break, so linksec's data_post step fails for real.
      localPlugins: {
        test_break_headers: `
exports.register = function () { this.register_hook('data_post', 'sabotage', -100) }
exports.sabotage = (next, connection) => {
  const header = connection.transaction.header
  if (header.get('X-Test-Break')) header.get_all = () => { throw new Error('injected header fault') }
  next()
}`,
      },
    })
  })
  after(async () => h?.stop())

  it('answers 451 4.3.0 when a linksec hook throws, and queues nothing', async (t) => {
    if (!ready(t)) return
    const r = await swaks({ port: h!.port, headers: { Subject: 'broken', 'X-Test-Break': 'yes' } })
    const reply = serverReplies(r.out).find((l) => l.startsWith('451'))
    assert.ok(reply, r.out)
    assert.match(reply, /^451 4\.3\.0 linksec could not check this message; please try again later/)
    await h!.waitForLog(/linksec internal error at data_post: (Error: )?injected header fault/)
    assert.deepEqual(h!.queued(), [])
  })

  it('still accepts an ordinary message on the same server', async (t) => {
    if (!ready(t)) return
    await swaks({ port: h!.port, headers: { Subject: 'fine' } })
    const [msg] = await h!.waitForQueued(1)
    assert.ok(msg!.raw.includes(`Authentication-Results: ${TEST_AUTHSERV_ID}; x-tls=none`))
  })

  it('refuses to start with an invalid linksec.ini, naming the key and the fix', async (t) => {
    if (!needTools(t, TOOLS)) return
    const r = await startHarakaExpectingFailure({
      linksecIniText: '[main]\nlevel=9\n[inbound]\ntls_result=false\n',
    })
    assert.equal(r.started, false)
    assert.match(r.output, /\[main\] level: 9 is out of range; write a number between 0 and 4/)
    assert.match(r.output, /\[inbound\] tls_result is not a known key/)
  })
})

describe('Haraka + linksec: the shipped examples/haraka configuration', () => {
  it('starts, declares LINKSEC 3, offers REQUIRETLS under TLS and writes its authserv-id', async (t) => {
    if (!needTools(t, TOOLS)) return
    const dir = path.join(REPO_ROOT, 'examples', 'haraka', 'config')
    const plugins = fs
      .readFileSync(path.join(dir, 'plugins'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
    const h = await startHaraka({
      plugins: [...plugins, 'test_sink'],
      linksecIniText: fs.readFileSync(path.join(dir, 'linksec.ini'), 'utf8'),
    })
    try {
      assert.equal(linksecKeyword(await ehlo(h)), 'LINKSEC 3 ttl=86400')
      assert.ok((await ehlo(h, true)).includes('REQUIRETLS'))
      await swaks({ port: h.port, headers: { Subject: 'example' } })
      const [msg] = await h.waitForQueued(1)
      assert.ok(msg!.raw.includes('Authentication-Results: mx.example.net; x-tls=none'), msg!.raw)
    } finally {
      await h.stop()
    }
  })
})
