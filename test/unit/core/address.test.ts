/** The one spelling of a mail domain (core/address.ts): every adapter and step compares this form. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { addressDomain, mailDomain, namedDomains } from '../../../core/address'

test('mailDomain: blanks and one trailing dot dropped, lower-cased, U-labels as A-labels', () => {
  assert.equal(mailDomain(' Example.ORG. '), 'example.org')
  assert.equal(mailDomain('BÜCHER.example'), 'xn--bcher-kva.example')
  assert.equal(mailDomain('xn--bcher-kva.example'), 'xn--bcher-kva.example')
  assert.equal(mailDomain(''), undefined)
  assert.equal(mailDomain('.'), undefined)
})

test('addressDomain: envelope forms; an IDN sender and its A-label give one domain', () => {
  assert.equal(addressDomain('<Alice@Example.ORG.>'), 'example.org')
  assert.equal(addressDomain('<alice@bücher.example>'), 'xn--bcher-kva.example')
  assert.equal(addressDomain('alice@xn--bcher-kva.example'), 'xn--bcher-kva.example')
  assert.equal(addressDomain('<>'), undefined)
  assert.equal(addressDomain('postmaster'), undefined)
})

test('namedDomains: every domain of every From value, once, cut to the host name it starts with', () => {
  assert.deepEqual(
    namedDomains([
      '"bob@Ours.Example" <eve@evil.example.>',
      'friends: a@b.example, c@ours.example;',
      'x@ours.example_junk (comment)',
      'y@bücher.example',
    ]),
    ['ours.example', 'evil.example', 'b.example', 'xn--bcher-kva.example'],
  )
  assert.deepEqual(namedDomains(['no address here', 'a@localhost', 'a@[192.0.2.1]']), [])
})
