/**
 * STARTTLS on every server running linksec, and honest declarations, with
 * real peers: a Haraka with no certificate configured makes its own at start,
 * offers STARTTLS (swaks --tls succeeds) and declares LINKSEC only then;
 * `linksec tls init --postfix` plus the lines it prints make a private Postfix
 * offer STARTTLS; `linksec record` agrees with EHLO.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, it } from 'node:test'
import { startHaraka } from '../helpers/haraka'
import { startPostfix, swaks as pfSwaks, writeConfigDir, REPO_ROOT } from '../helpers/postfix'
import { lastEhloKeywords, swaks } from '../helpers/swaks'
import { needTools } from '../helpers/tools'

const HARAKA_TOOLS = { swaks: 'swaks libnet-ssleay-perl', openssl: 'openssl' }
const LINKSEC_BIN = path.join(REPO_ROOT, 'dist', 'bin', 'linksec.js')
const linksec = (...args: string[]) =>
  spawnSync(process.execPath, [LINKSEC_BIN, ...args], { encoding: 'utf8' })

describe('Haraka with linksec and no certificate configured', () => {
  it('makes a self-signed certificate at start, offers STARTTLS and declares its level only then', async (t) => {
    if (!needTools(t, HARAKA_TOOLS)) return
    const h = await startHaraka({ noCertificate: true, linksec: { main: { mailboxes_tls_only: true } } })
    try {
      const plain = await swaks({ port: h.port, quitAfter: 'EHLO' })
      const keywords = lastEhloKeywords(plain.out)
      assert.ok(keywords.includes('STARTTLS'), plain.out)
      assert.ok(keywords.includes('LINKSEC 3 ttl=86400'), plain.out)
      assert.ok(!keywords.includes('REQUIRETLS'), 'REQUIRETLS only under TLS')
      const tls = await swaks({ port: h.port, tls: true, quitAfter: 'EHLO' })
      assert.equal(tls.status, 0, tls.out)
      assert.deepEqual(
        lastEhloKeywords(tls.out).filter((k) => /^(LINKSEC|REQUIRETLS)/.test(k)),
        ['LINKSEC 3 ttl=86400', 'REQUIRETLS'],
      )
      const cert = path.join(h.dir, 'config', 'tls_cert.pem')
      assert.ok(fs.existsSync(`${cert}.linksec`), 'the certificate carries linksec’s mark')
      assert.equal(fs.statSync(path.join(h.dir, 'config', 'tls_key.pem')).mode & 0o777, 0o600)
      // linksec record over the same configuration directory says the same level.
      const rec = linksec('record', 'example.net', '--config', path.join(h.dir, 'config'))
      assert.match(rec.stdout, /level=3;/, rec.stderr)
    } finally {
      await h.stop()
    }
  })

  it('with [tls] self_signed=false: no STARTTLS, so no LINKSEC keyword and record says level 0', async (t) => {
    if (!needTools(t, HARAKA_TOOLS)) return
    const h = await startHaraka({
      noCertificate: true,
      linksec: { main: { mailboxes_tls_only: true }, tls: { self_signed: false } },
    })
    try {
      const plain = await swaks({ port: h.port, quitAfter: 'EHLO' })
      const keywords = lastEhloKeywords(plain.out)
      assert.ok(!keywords.includes('STARTTLS'), plain.out)
      assert.ok(!keywords.some((k) => k.startsWith('LINKSEC')), plain.out)
      const rec = linksec('record', 'example.net', '--config', path.join(h.dir, 'config'))
      assert.match(rec.stdout, /level=0;/)
      assert.match(rec.stderr, /no STARTTLS/)
    } finally {
      await h.stop()
    }
  })
})

describe('linksec tls init --postfix', () => {
  it('the printed postconf lines make Postfix offer STARTTLS', async (t) => {
    if (!needTools(t, { ...HARAKA_TOOLS, postfix: 'postfix' })) return
    const conf = writeConfigDir({ main: { authserv_id: 'mta.example.test' } })
    const pf = await startPostfix({ tls: false })
    try {
      assert.doesNotMatch(pfSwaks(pf, { tls: true }).transcript, /220 .*Ready to start TLS/i)
      const init = linksec('tls', 'init', '--postfix', '--config', conf)
      assert.equal(init.status, 0, init.stderr)
      const settings = init.stdout
        .split('\n')
        .map((l) => /^postconf -e '(.*)'$/.exec(l)?.[1])
        .filter((s): s is string => s !== undefined)
      assert.ok(
        settings.some((s) => s.startsWith('smtpd_tls_cert_file = ')),
        init.stdout,
      )
      // Postfix's test instance relays to smtp-sink: keep its outbound setting.
      pf.postconf(settings.filter((s) => !s.startsWith('smtp_tls_security_level')))
      await pf.reload()
      const r = pfSwaks(pf, { tls: true })
      assert.equal(r.status, 0, r.transcript)
      assert.match(r.transcript, /TLS started/i)
      // A second init never replaces it silently unless it is ours; an operator's is refused.
      fs.writeFileSync(path.join(conf, 'tls_cert.pem.linksec'), '{"made_by":"someone else"}')
      assert.equal(linksec('tls', 'init', '--postfix', '--config', conf).status, 73)
    } finally {
      await pf.stop()
      fs.rmSync(conf, { recursive: true, force: true })
    }
  })
})
