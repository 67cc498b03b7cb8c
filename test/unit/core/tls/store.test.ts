import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, describe, it } from 'node:test'
import { X509Certificate } from 'node:crypto'
import { parseConfig } from '../../../../core/config'
import { createMetrics } from '../../../../core/metrics'
import { NO_TLS_REASON, offersRequireTls, ownLevel } from '../../../../core/own-level'
import {
  CERT_DAYS,
  certificateFacts,
  makeSelfSignedSync,
  opensslArgs,
} from '../../../../core/tls/certificate'
import { recordOwnCertificate } from '../../../../core/tls/metrics'
import {
  certificatePaths,
  certificateUsable,
  ensureCertificateSync,
  markPath,
  ownCertificate,
  renewalDue,
  renewIfDue,
  writeOwnCertificate,
} from '../../../../core/tls/store'

const DAY = 24 * 3600 * 1000
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-tls-unit-'))
after(() => fs.rmSync(scratch, { recursive: true, force: true }))
let n = 0
const pathsHere = () => {
  const d = path.join(scratch, String(n++))
  return { cert: path.join(d, 'tls_cert.pem'), key: path.join(d, 'tls_key.pem') }
}

describe('self-signed certificate', () => {
  const pair = makeSelfSignedSync('mx.example.test')
  it('is ECDSA P-256, SAN = the host name, one year, not a CA', () => {
    const c = new X509Certificate(pair.certPem)
    assert.equal(c.subjectAltName, 'DNS:mx.example.test')
    assert.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
    assert.equal(c.ca, false)
    const days = (new Date(c.validTo).getTime() - new Date(c.validFrom).getTime()) / DAY
    assert.equal(Math.round(days), CERT_DAYS)
    assert.ok(c.checkPrivateKey(require('node:crypto').createPrivateKey(pair.keyPem)))
  })
  it('refuses a name that is not a host name (no openssl argument injection)', () => {
    assert.throws(() => makeSelfSignedSync('-x /CN=evil'), /not a host name/)
    assert.ok(opensslArgs('a.b', 'k', 'c').includes('subjectAltName=DNS:a.b'))
  })
})

describe('certificate files and the linksec mark', () => {
  it('writes the key 0600 and marks the certificate as ours', () => {
    const p = pathsHere()
    const own = writeOwnCertificate(p, makeSelfSignedSync('mx.example.test'), 'mx.example.test')
    assert.equal(fs.statSync(p.key).mode & 0o777, 0o600)
    assert.equal(ownCertificate(p)?.fingerprint256, own.fingerprint256)
    assert.equal(certificateUsable(p, Date.now()), true)
  })

  it('an operator certificate put over ours is no longer ours (the mark names another fingerprint)', () => {
    const p = pathsHere()
    writeOwnCertificate(p, makeSelfSignedSync('mx.example.test'), 'mx.example.test')
    fs.writeFileSync(p.cert, makeSelfSignedSync('real.example.test').certPem)
    assert.equal(ownCertificate(p), undefined)
    assert.equal(ensureCertificateSync(p, 'mx.example.test', Date.now() + 400 * DAY).outcome, 'operator')
  })

  it('ensure: makes one when none, keeps ours until 30 days before expiry, then renews it', async () => {
    const p = pathsHere()
    const made = ensureCertificateSync(p, 'mx.example.test', Date.now())
    assert.equal(made.outcome, 'made')
    assert.equal(ensureCertificateSync(p, 'other', Date.now()).outcome, 'kept')
    const notAfter = made.certificate!.notAfter.getTime()
    assert.equal(renewalDue(made.certificate!, notAfter - 31 * DAY), false)
    assert.equal(renewalDue(made.certificate!, notAfter - 29 * DAY), true)
    const renewed = await renewIfDue(p, notAfter - 29 * DAY)
    assert.equal(renewed.outcome, 'renewed')
    assert.notEqual(renewed.certificate!.fingerprint256, made.certificate!.fingerprint256)
    assert.equal(renewed.certificate!.hostname, 'mx.example.test')
    assert.equal(ownCertificate(p)?.fingerprint256, renewed.certificate!.fingerprint256)
  })

  it('renew never touches a certificate without the mark, nor makes one', async () => {
    const p = pathsHere()
    assert.equal((await renewIfDue(p, Date.now())).outcome, 'none')
    fs.mkdirSync(path.dirname(p.cert), { recursive: true })
    const op = makeSelfSignedSync('real.example.test')
    fs.writeFileSync(p.cert, op.certPem)
    fs.writeFileSync(p.key, op.keyPem)
    assert.equal((await renewIfDue(p, Date.now() + 400 * DAY)).outcome, 'operator')
    assert.equal(fs.readFileSync(p.cert, 'utf8'), op.certPem)
    assert.equal(fs.existsSync(markPath(p.cert)), false)
  })

  it('an expired certificate or a missing key is not usable', () => {
    const p = pathsHere()
    writeOwnCertificate(p, makeSelfSignedSync('mx.example.test'), 'mx.example.test')
    assert.equal(certificateUsable(p, Date.now() + 400 * DAY), false)
    fs.rmSync(p.key)
    assert.equal(certificateUsable(p, Date.now()), false)
  })

  it('the expiry metric carries the Unix time of notAfter', async () => {
    const p = pathsHere()
    const own = writeOwnCertificate(p, makeSelfSignedSync('mx.example.test'), 'mx.example.test')
    const m = createMetrics({ processMetrics: false })
    recordOwnCertificate(m, own)
    const text = await m.registry.metrics()
    assert.match(
      text,
      new RegExp(
        `linksec_tls_certificate_expiry_timestamp_seconds\\{file="${p.cert}"\\} ${Math.floor(own.notAfter.getTime() / 1000)}`,
      ),
    )
    assert.deepEqual(certificateFacts('not a pem'), undefined)
  })
})

describe('own level: one answer for EHLO, record and check', () => {
  const cfg = (raw: Record<string, Record<string, string>>) => parseConfig(raw, scratch)
  it('no STARTTLS: nothing declared, and it says why', () => {
    const own = ownLevel(cfg({ main: { mailboxes_tls_only: 'true' } }), false)
    assert.deepEqual(own, { level: 0, declares: false, heldBackBy: NO_TLS_REASON })
  })
  it('with STARTTLS: the performed level and what holds it back', () => {
    assert.deepEqual(ownLevel(cfg({ main: { mailboxes_tls_only: 'true' } }), true), {
      level: 3,
      declares: true,
      heldBackBy: undefined,
    })
    assert.equal(ownLevel(cfg({}), true).heldBackBy, 'level 2 needs [main] mailboxes_tls_only=true')
  })
  it('REQUIRETLS needs TLS and [enforce] enabled, not mailboxes_tls_only', () => {
    assert.equal(offersRequireTls(cfg({}), true), true)
    assert.equal(offersRequireTls(cfg({}), false), false)
    assert.equal(offersRequireTls(cfg({ enforce: { enabled: 'false' } }), true), false)
  })
  it('[tls] defaults: Haraka file names in the config directory, self_signed and renew on', () => {
    const c = cfg({})
    assert.deepEqual(c.tls, {
      self_signed: true,
      hostname: '',
      cert_file: 'tls_cert.pem',
      key_file: 'tls_key.pem',
      renew: true,
    })
    assert.deepEqual(certificatePaths(c), {
      cert: path.join(scratch, 'tls_cert.pem'),
      key: path.join(scratch, 'tls_key.pem'),
    })
    assert.equal(c.socketmap.tlsrpt, false)
  })
})
