import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { buildSafePartMessage, hasSafePart, PARTIAL_HEADER } from '../../../core/enforce'

const withFallback = [
  'From: Alice <alice@a.test>',
  'To: bob@b.test',
  'Subject: secret',
  'Link-Security-Required: 4',
  'DKIM-Signature: v=1; a=rsa-sha256;',
  '  b=abc',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="outer"',
  '',
  'preamble',
  '--outer',
  'Content-Type: text/plain',
  '',
  'the secret text',
  '--outer',
  'Content-Type: multipart/alternative; boundary=inner',
  '',
  '--inner',
  'Content-Type: text/plain; charset=utf-8',
  'Link-Security-Fallback: yes',
  '',
  'Pick up your message at https://a.test/p/123',
  '--inner--',
  '--outer--',
  '',
].join('\r\n')

describe('safe-part fallback', () => {
  it('finds a nested marked part', () => {
    assert.equal(hasSafePart(withFallback), true)
  })
  it('builds a message with only the marked part and a header saying so', () => {
    const out = buildSafePartMessage(withFallback, 'the receiving server declares level 0')!
    const [head, body] = out.split('\r\n\r\n')
    assert.match(head!, /^From: Alice <alice@a\.test>$/m)
    assert.match(head!, /^Subject: secret$/m)
    assert.match(
      head!,
      new RegExp(
        `^${PARTIAL_HEADER}: only the part marked Link-Security-Fallback was delivered; the receiving server declares level 0$`,
        'm',
      ),
    )
    assert.match(head!, /^Content-Type: text\/plain; charset=utf-8$/m)
    assert.doesNotMatch(head!, /Link-Security-Required|DKIM-Signature|multipart/)
    assert.equal(body, 'Pick up your message at https://a.test/p/123\r\n')
    assert.doesNotMatch(out, /the secret text/)
  })
  it('has nothing to offer without a marked part, or for a single-part message', () => {
    const plain = 'From: a@a.test\r\nLink-Security-Fallback: yes\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
    assert.equal(hasSafePart(plain), false)
    assert.equal(buildSafePartMessage(plain, 'x'), undefined)
    assert.equal(
      hasSafePart(withFallback.replace('Link-Security-Fallback: yes', 'Link-Security-Fallback: no')),
      false,
    )
  })
  it('accepts LF-only input', () => {
    const lf = withFallback.replace(/\r\n/g, '\n')
    assert.match(buildSafePartMessage(lf, 'x')!, /\r\n\r\nPick up your message/)
  })
  it('splits only on delimiter lines: a longer line that starts with the boundary is part of the text', () => {
    // RFC 2046 §5.1.1: the delimiter is `--boundary` alone on its line (blanks allowed).
    for (const fake of ['--outerX', '--outer--X', '--outer x']) {
      const msg = [
        'From: a@a.test',
        'Content-Type: multipart/mixed; boundary="outer"',
        '',
        '--outer',
        'Content-Type: text/plain',
        '',
        'the secret text',
        fake,
        'Content-Type: text/plain',
        'Link-Security-Fallback: yes',
        '',
        'not a part of its own',
        '--outer--',
        '',
      ].join('\r\n')
      assert.equal(hasSafePart(msg), false, fake)
      assert.equal(buildSafePartMessage(msg, 'x'), undefined, fake)
    }
  })
  it('reads the boundary parameter as RFC 2045 does: one inside another quoted parameter is not it', () => {
    const msg = [
      'From: a@a.test',
      'Content-Type: multipart/mixed; x-note="a; boundary=fake here"; boundary=real',
      '',
      '--real',
      'Content-Type: text/plain',
      '',
      '--fake',
      'Content-Type: text/plain',
      'Link-Security-Fallback: yes',
      '',
      'smuggled',
      '--fake--',
      '--real',
      'Content-Type: text/plain',
      'Link-Security-Fallback: yes',
      '',
      'the real safe part',
      '--real--',
      '',
    ].join('\r\n')
    const out = buildSafePartMessage(msg, 'x')!
    assert.equal(out.split('\r\n\r\n')[1], 'the real safe part\r\n')
  })
  it('keeps folded header fields as written and drops lines that are no field', () => {
    const msg = withFallback.replace('Subject: secret', 'Subject: a long\r\n  folded subject\r\nnot a field')
    const head = buildSafePartMessage(msg, 'x')!.split('\r\n\r\n')[0]!
    assert.match(head, /^Subject: a long\r\n {2}folded subject$/m)
    assert.doesNotMatch(head, /not a field/)
  })
})
