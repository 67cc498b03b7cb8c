import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { messageRequirement } from '../../../core/levels'
import { checkRecipients, recipientDomains, type PeerPolicy } from '../../../core/enforce'

const req = (n: string, requiretls = false) =>
  messageRequirement({
    requiretlsParam: requiretls,
    requirementHeaders: n ? [n] : [],
    tlsRequiredHeaders: [],
  })

const world: Record<string, number | undefined | 'error'> = {
  'strong.test': 4,
  'three.test': 3,
  'weak.test': 1,
  'unknown.test': undefined,
  'broken.test': 'error',
}
const lookups: string[] = []
const lookup = async (domain: string): Promise<PeerPolicy> => {
  lookups.push(domain)
  const v = world[domain]
  if (v === 'error') throw new Error('DNS timeout')
  return {
    domain,
    level: v as PeerPolicy['level'],
    source: 'txt',
    tlsRequired: false,
    certificateRequired: false,
  }
}
const enforcement = { noDowngrade: true, peerLevel: true }
const haraka = { enforcement, unknown: 'accept' as const }
const milter = { enforcement, unknown: 'reject' as const }

describe('checkRecipients', () => {
  it('accepts untagged mail without any lookup', async () => {
    lookups.length = 0
    const v = await checkRecipients(req(''), ['weak.test'], lookup, haraka)
    assert.equal(v.action, 'continue')
    assert.deepEqual(lookups, [])
  })
  it('rejects 550 5.7.10 naming every weak domain and its level', async () => {
    const v = await checkRecipients(req('3'), ['strong.test', 'weak.test', 'unknown.test'], lookup, milter)
    assert.equal(v.action, 'reject')
    assert.equal(v.code, 550)
    assert.equal(v.enhanced, '5.7.10')
    assert.match(v.text!, /weak\.test \(level 1\)/)
    assert.match(v.text!, /unknown\.test \(none declared\)/)
    assert.doesNotMatch(v.text!, /strong\.test/)
    assert.match(v.text!, /Link-Security-Required: 3/)
  })
  it('leaves unknown domains to the delivery check in Haraka', async () => {
    assert.equal(
      (await checkRecipients(req('4'), ['unknown.test', 'strong.test'], lookup, haraka)).action,
      'continue',
    )
  })
  it('accepts when every domain meets the level', async () => {
    assert.equal(
      (await checkRecipients(req('3'), ['three.test', 'strong.test'], lookup, milter)).action,
      'continue',
    )
    assert.equal((await checkRecipients(req('4'), ['three.test'], lookup, milter)).action, 'reject')
  })
  it('tempfails 451 4.4.3 when a lookup fails and nothing is known to be weak', async () => {
    const v = await checkRecipients(req('2'), ['strong.test', 'broken.test'], lookup, haraka)
    assert.equal(v.action, 'tempfail')
    assert.equal(v.code, 451)
    assert.equal(v.enhanced, '4.4.3')
    assert.match(v.text!, /broken\.test/)
  })
  it('a known weak domain wins over a failed lookup (the sender can act now)', async () => {
    assert.equal(
      (await checkRecipients(req('2'), ['weak.test', 'broken.test'], lookup, haraka)).action,
      'reject',
    )
  })
  it('REQUIRETLS needs level 3 even on a level-3 server', async () => {
    const l3 = { enforcement: { noDowngrade: true, peerLevel: false }, unknown: 'accept' as const }
    assert.equal((await checkRecipients(req('4'), ['weak.test'], lookup, l3)).action, 'continue')
    const v = await checkRecipients(req('', true), ['weak.test'], lookup, l3)
    assert.equal(v.action, 'reject')
    assert.match(v.text!, /REQUIRETLS/)
  })
  it('TLS-Required: No is never rejected', async () => {
    const r = messageRequirement({
      requiretlsParam: false,
      requirementHeaders: ['4'],
      tlsRequiredHeaders: ['No'],
    })
    assert.equal((await checkRecipients(r, ['weak.test'], lookup, milter)).action, 'continue')
  })
})

describe('recipientDomains', () => {
  it('lower-cases, strips brackets and trailing dots, dedupes', () => {
    assert.deepEqual(recipientDomains(['<a@Example.NET>', 'b@example.net.', 'c@other.test', 'nodomain']), [
      'example.net',
      'other.test',
    ])
  })
})

describe('checkRecipients with uncertain policies', () => {
  it('tempfails instead of rejecting when the low level may be a lookup failure', async () => {
    const l = async (domain: string): Promise<PeerPolicy> => ({
      domain,
      level: 1,
      source: 'txt',
      tlsRequired: true,
      certificateRequired: false,
      uncertain: true,
    })
    const v = await checkRecipients(req('3'), ['maybe.test'], l, haraka)
    assert.equal(v.action, 'tempfail')
    assert.match(v.text!, /maybe\.test/)
  })

  it('judges "some sources failed, nothing declared" as unknown: accepted, or 451 where unknown is refused', async () => {
    const l = async (domain: string): Promise<PeerPolicy> => ({
      domain,
      tlsRequired: false,
      certificateRequired: false,
      uncertain: true,
    })
    assert.equal((await checkRecipients(req('3'), ['half.test'], l, haraka)).action, 'continue')
    const v = await checkRecipients(req('3'), ['half.test'], l, milter)
    assert.equal(v.action, 'tempfail')
    assert.equal(v.enhanced, '4.4.3')
  })
})
