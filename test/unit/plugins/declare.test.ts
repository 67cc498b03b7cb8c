import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  checkRequireTlsParam,
  declaredLevel,
  declareDuty,
  ehloKeywords,
  sessionCanUseTls,
  setEnforcementLoaded,
} from '../../../plugins/declare'
import { CONT, DENY } from '../../../plugins/haraka'
import { callNext, connectionWith, fakePlugin, runtimeWith, type RawIni } from './fakes'

const L3: RawIni = { main: { mailboxes_tls_only: true } }

describe('declaredLevel', () => {
  const cases: [RawIni, number][] = [
    [{}, 1], // mailboxes attestation missing: only level 1 duties
    [L3, 3],
    [{ main: { mailboxes_tls_only: true, level: 4 } }, 4],
    [{ main: { mailboxes_tls_only: true, level: 4 }, enforce: { peer_level: false } }, 3],
    [{ main: { mailboxes_tls_only: true, level: 4 }, enforce: { enabled: false } }, 2],
    [{ main: { mailboxes_tls_only: true, level: 0 } }, 0],
  ]
  for (const [raw, level] of cases) {
    it(`${JSON.stringify(raw)} -> ${level}`, () =>
      assert.equal(declaredLevel(runtimeWith(raw).config), level))
  }
})

describe('ehloKeywords', () => {
  /** A plaintext session where Haraka's tls plugin offered STARTTLS. */
  const offeringStarttls = () => {
    const conn = connectionWith()
    conn.capabilities = ['greeting', 'STARTTLS']
    return conn
  }

  it('LINKSEC only where STARTTLS is offered or TLS is up; REQUIRETLS only under TLS', () => {
    const cfg = runtimeWith(L3).config
    assert.deepEqual(ehloKeywords(cfg, offeringStarttls()), ['LINKSEC 3 ttl=86400'])
    assert.deepEqual(ehloKeywords(cfg, connectionWith({ tls: true })), ['LINKSEC 3 ttl=86400', 'REQUIRETLS'])
  })

  it('no STARTTLS on this session (no certificate): no LINKSEC, no REQUIRETLS', () => {
    const conn = connectionWith()
    conn.capabilities = ['greeting', 'PIPELINING']
    assert.deepEqual(ehloKeywords(runtimeWith(L3).config, conn), [])
    assert.equal(sessionCanUseTls(conn), false)
  })

  it('REQUIRETLS follows [enforce] enabled, not the mailbox attestation of level 2', () => {
    assert.deepEqual(ehloKeywords(runtimeWith({}).config, connectionWith({ tls: true })), [
      'LINKSEC 1 ttl=86400',
      'REQUIRETLS',
    ])
    const off = runtimeWith({ ...L3, enforce: { enabled: false } }).config
    assert.deepEqual(ehloKeywords(off, connectionWith({ tls: true })), ['LINKSEC 2 ttl=86400'])
  })

  it('without the outbound duty running (untested Haraka), no level 3+ and no REQUIRETLS', () => {
    const cfg = runtimeWith(L3).config
    setEnforcementLoaded(false)
    try {
      assert.equal(declaredLevel(cfg), 2)
      assert.deepEqual(ehloKeywords(cfg, connectionWith({ tls: true })), ['LINKSEC 2 ttl=86400'])
    } finally {
      setEnforcementLoaded(true)
    }
    assert.deepEqual(ehloKeywords(cfg, connectionWith({ tls: true })), ['LINKSEC 3 ttl=86400', 'REQUIRETLS'])
  })

  it('each declaration can be switched off', () => {
    const cfg = runtimeWith({ ...L3, declare: { ehlo: false, requiretls: false } }).config
    assert.deepEqual(ehloKeywords(cfg, connectionWith({ tls: true })), [])
  })

  it('the capabilities hook appends to connection.capabilities, after the tls plugin', async () => {
    const conn = connectionWith({ tls: true })
    conn.capabilities = ['greeting', 'PIPELINING']
    const ctx = { plugin: fakePlugin(), rt: runtimeWith(L3) }
    await callNext((next) => declareDuty.hooks!.capabilities!.handler(ctx, next, conn))
    assert.deepEqual(conn.capabilities, ['greeting', 'PIPELINING', 'LINKSEC 3 ttl=86400', 'REQUIRETLS'])
    assert.ok((declareDuty.hooks!.capabilities!.priority ?? 0) > 0)
  })
})

describe('MAIL FROM … REQUIRETLS', () => {
  const rt = runtimeWith(L3)
  it('plaintext -> 530 5.7.10', () => {
    const v = checkRequireTlsParam(rt, connectionWith(), null)
    assert.equal(v?.code, 530)
    assert.equal(v?.enhanced, '5.7.10')
  })
  it('TLS but not offered -> 555 5.5.4', () => {
    const noEnforce = runtimeWith({ enforce: { enabled: false } })
    const v = checkRequireTlsParam(noEnforce, connectionWith({ tls: true }), null)
    assert.equal(`${v?.code} ${v?.enhanced}`, '555 5.5.4')
  })
  it('a value -> 501 5.5.4 (the keyword takes none)', () => {
    assert.equal(checkRequireTlsParam(rt, connectionWith({ tls: true }), 'yes')?.code, 501)
  })
  it('TLS and offered -> accepted', () => {
    assert.equal(checkRequireTlsParam(rt, connectionWith({ tls: true }), null), undefined)
  })

  const mail = (conn: ReturnType<typeof connectionWith>, params: Record<string, string | null>) =>
    callNext((next) =>
      declareDuty.hooks!.mail!.handler({ plugin: fakePlugin(), rt }, next, conn, [{}, params]),
    )

  it('the mail hook notes an accepted REQUIRETLS in transaction.notes.linksec', async () => {
    const conn = connectionWith({ tls: true })
    assert.equal((await mail(conn, { REQUIRETLS: null })).code, CONT)
    assert.deepEqual(conn.transaction.notes.linksec, { requiretls: true })
  })

  it('the mail hook refuses it in plaintext and notes nothing', async () => {
    const conn = connectionWith()
    const r = await mail(conn, { REQUIRETLS: null })
    assert.equal(r.code, DENY)
    assert.equal((r.msg as { code: number }).code, 530)
    assert.equal(conn.transaction.notes.linksec, undefined)
  })

  it('the mail hook ignores MAIL FROM without the parameter', async () => {
    const conn = connectionWith()
    assert.equal((await mail(conn, { SIZE: '100' })).code, undefined)
  })
})
