/**
 * A real Haraka (npm Haraka, the devDependency) with linksec installed by
 * `npm install <repo>` and listed in config/plugins, driven by swaks on
 * loopback. What an SMTP client sees, and what Haraka queued.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it, type TestContext } from 'node:test'
import { tlsAuthResults } from '../../core/inbound'
import { startHaraka, TEST_AUTHSERV_ID, type HarakaInstance, type QueuedMessage } from '../helpers/haraka'
import { lastEhloKeywords, requireTlsFrom, serverReplies, swaks } from '../helpers/swaks'
import { needTools } from '../helpers/tools'

const TOOLS = { swaks: 'swaks', openssl: 'openssl' }

/** Header lines of a queued message, unfolded. */
function headerLines(msg: QueuedMessage): string[] {
  const head = msg.raw.split(/\r?\n\r?\n/)[0] ?? ''
  return head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)
}

function headerValues(msg: QueuedMessage, name: string): string[] {
  const prefix = name.toLowerCase() + ':'
  return headerLines(msg)
    .filter((l) => l.toLowerCase().startsWith(prefix))
    .map((l) => l.slice(prefix.length).trim())
}

/**
 * Authentication-Results fields other than our signature verdict: these
 * tests are about the link (x-tls) and forged fields; x-openpgp has its own
 * tests (verify-e2e), and every message now carries one.
 */
function linkResults(msg: QueuedMessage): string[] {
  return headerValues(msg, 'Authentication-Results').filter((v) => !/;\s*x-openpgp=/.test(v))
}

/** The one queued message whose Subject carries this marker. */
function queuedWith(h: HarakaInstance, marker: string): QueuedMessage[] {
  return h.queued().filter((m) => m.raw.includes(marker))
}

/** swaks' own account of the TLS session: "TLSv1.3:TLS_AES_256_GCM_SHA384:256". */
function swaksCipher(out: string): { version: string; cipher: string; cipherBits: number } {
  const m = /TLS started with cipher ([^:\s]+):([^:\s]+):(\d+)/.exec(out)
  assert.ok(m, `swaks reported no TLS cipher:\n${out}`)
  return { version: m[1]!, cipher: m[2]!, cipherBits: Number(m[3]) }
}

describe('Haraka + linksec at level 3 (mailboxes_tls_only=true)', { concurrency: false }, () => {
  let h: HarakaInstance | undefined
  const ready = (t: TestContext): boolean => needTools(t, TOOLS) && h !== undefined

  before(async () => {
    h = await startHaraka({ linksec: { main: { mailboxes_tls_only: true } } })
  })
  after(async () => h?.stop())

  it('starts on the Haraka of the peerDependencies range with the outbound duty enabled', (t) => {
    if (!ready(t)) return
    const log = h!.log()
    assert.match(log, /linksec plugin registered.*duties=declare,outbound/)
    assert.doesNotMatch(log, /outbound duty .*is not enabled/)
  })

  it('advertises LINKSEC 3 ttl=86400 and STARTTLS but no REQUIRETLS in plaintext', async (t) => {
    if (!ready(t)) return
    const r = await swaks({ port: h!.port, quitAfter: 'EHLO' })
    const kw = lastEhloKeywords(r.out)
    assert.ok(kw.includes('LINKSEC 3 ttl=86400'), kw.join(' | '))
    assert.ok(kw.includes('STARTTLS'), kw.join(' | '))
    assert.ok(!kw.includes('REQUIRETLS'), kw.join(' | '))
  })

  it('advertises REQUIRETLS (and LINKSEC) after STARTTLS', async (t) => {
    if (!ready(t)) return
    const r = await swaks({ port: h!.port, tls: true, quitAfter: 'EHLO' })
    assert.match(r.out, /TLS started with cipher/)
    const kw = lastEhloKeywords(r.out)
    assert.ok(kw.includes('REQUIRETLS'), kw.join(' | '))
    assert.ok(kw.includes('LINKSEC 3 ttl=86400'), kw.join(' | '))
    assert.ok(!kw.includes('STARTTLS'), 'STARTTLS is not offered twice')
  })

  it('refuses MAIL FROM … REQUIRETLS in plaintext with 530 5.7.10 and queues nothing', async (t) => {
    if (!ready(t)) return
    const before = h!.queued().length
    const r = await swaks({ port: h!.port, from: requireTlsFrom('plain@example.org') })
    assert.match(r.out, /MAIL FROM:<plain@example\.org> REQUIRETLS/)
    const refusal = serverReplies(r.out).find((l) => l.startsWith('530'))
    assert.ok(refusal, r.out)
    assert.match(refusal, /^530 5\.7\.10 REQUIRETLS needs a TLS session; issue STARTTLS first/)
    assert.equal(h!.queued().length, before)
  })

  it('accepts MAIL FROM … REQUIRETLS under TLS and remembers it in transaction.notes.linksec', async (t) => {
    if (!ready(t)) return
    const marker = 'requiretls-under-tls'
    const r = await swaks({
      port: h!.port,
      tls: true,
      from: requireTlsFrom('rt@example.org'),
      headers: { Subject: marker },
    })
    assert.match(r.out, /<~\s+250 .*queued/, r.out)
    const [msg] = await waitFor(h!, marker)
    const notes = msg!.notes.linksec as {
      requiretls?: boolean
      requirement?: { source: string; level: number }
    }
    assert.equal(notes.requiretls, true)
    assert.equal(notes.requirement?.source, 'requiretls')
    assert.equal(notes.requirement?.level, 3)
  })

  it('records x-tls=pass with the session TLS facts, as the milter writes it', async (t) => {
    if (!ready(t)) return
    const marker = 'tls-facts'
    const r = await swaks({ port: h!.port, tls: true, headers: { Subject: marker } })
    const [msg] = await waitFor(h!, marker)
    const expected = tlsAuthResults(TEST_AUTHSERV_ID, swaksCipher(r.out))
    assert.deepEqual(linkResults(msg!), [expected])
    assert.match(expected, /x-tls=pass smtp\.version=TLSv1\.[23] smtp\.cipher=\S+ smtp\.bits=\d+/)
  })

  it('records x-tls=none for a plaintext message', async (t) => {
    if (!ready(t)) return
    const marker = 'plain-untagged'
    await swaks({ port: h!.port, headers: { Subject: marker } })
    const [msg] = await waitFor(h!, marker)
    assert.deepEqual(linkResults(msg!), [`${TEST_AUTHSERV_ID}; x-tls=none`])
  })

  it('rejects a tagged message sent in plaintext with 550 5.7.10 and queues nothing', async (t) => {
    if (!ready(t)) return
    const marker = 'tagged-plaintext'
    const r = await swaks({ port: h!.port, headers: { Subject: marker, 'Link-Security-Required': '3' } })
    const refusal = serverReplies(r.out).find((l) => l.startsWith('550'))
    assert.ok(refusal, r.out)
    assert.match(refusal, /^550 5\.7\.10 .*Link-Security-Required: 3.*STARTTLS/)
    await settle()
    assert.deepEqual(queuedWith(h!, marker), [])
  })

  it('accepts the same tagged message over TLS, and a plaintext one marked TLS-Required: No', async (t) => {
    if (!ready(t)) return
    await swaks({
      port: h!.port,
      tls: true,
      headers: { Subject: 'tagged-tls', 'Link-Security-Required': '3' },
    })
    const [tagged] = await waitFor(h!, 'tagged-tls')
    assert.equal((tagged!.notes.linksec as { requirement: { level: number } }).requirement.level, 3)
    await swaks({
      port: h!.port,
      headers: { Subject: 'tagged-optional', 'Link-Security-Required': '3', 'TLS-Required': 'No' },
    })
    const [optional] = await waitFor(h!, 'tagged-optional')
    assert.deepEqual(linkResults(optional!), [`${TEST_AUTHSERV_ID}; x-tls=none`])
  })

  it('removes incoming Authentication-Results claiming our authserv-id, keeps others', async (t) => {
    if (!ready(t)) return
    const marker = 'forged-ar'
    await swaks({
      port: h!.port,
      headers: { Subject: marker },
      headerLines: [
        `Authentication-Results: ${TEST_AUTHSERV_ID}; x-tls=pass (forged-by-sender)`,
        'Authentication-Results: other.example; spf=pass smtp.mailfrom=example.org',
      ],
    })
    const [msg] = await waitFor(h!, marker)
    assert.ok(!msg!.raw.includes('forged-by-sender'), msg!.raw)
    // Haraka's clean_auth_results (default on) renames incoming A-R fields.
    assert.ok(msg!.raw.includes('other.example; spf=pass'), msg!.raw)
    assert.deepEqual(linkResults(msg!), [`${TEST_AUTHSERV_ID}; x-tls=none`])
  })
})

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 300))
}

async function waitFor(h: HarakaInstance, marker: string): Promise<QueuedMessage[]> {
  const end = Date.now() + 10_000
  for (;;) {
    const found = queuedWith(h, marker)
    if (found.length) return found
    if (Date.now() > end) throw new Error(`no queued message with ${marker}\n${h.log().slice(-3000)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
