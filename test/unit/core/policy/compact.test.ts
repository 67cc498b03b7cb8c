/**
 * Lean policy cache entries: answers that name only their domain are kept
 * as one shared template and come back exactly as they were; anything that
 * belongs to one domain alone is kept as it is; the template table is bounded.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { AnswerTemplate, AnswerTemplates } from '../../../../core/policy/compact'
import type { SourceAnswer } from '../../../../core/policy/types'

const nothing = (d: string): SourceAnswer[] => [
  { source: 'dane', outcome: 'none', reason: `${d} does not exist (NXDOMAIN)` },
  { source: 'mta_sts', outcome: 'none', reason: `no MTA-STS TXT record at _mta-sts.${d}` },
  { source: 'txt', outcome: 'none', reason: `no v=LINKSEC1 record at _linksec.${d}` },
]

test('domains that publish nothing share one template and read back exactly', () => {
  const t = new AnswerTemplates()
  const a = t.store('a.example', nothing('a.example'))
  const b = t.store('b.example.org', nothing('b.example.org'))
  assert.ok(a instanceof AnswerTemplate)
  assert.equal(a, b, 'one shared value')
  assert.equal(t.size, 1)
  assert.deepEqual(AnswerTemplates.load('a.example', a), nothing('a.example'))
  assert.deepEqual(AnswerTemplates.load('b.example.org', b), nothing('b.example.org'))
})

test('answers with a level, times or MX patterns are kept as they are', () => {
  const t = new AnswerTemplates()
  const found: SourceAnswer[] = [
    ...nothing('c.example').slice(0, 2),
    {
      source: 'txt',
      outcome: 'found',
      reason: 'declares level 3',
      level: 3,
      tlsMode: 'encrypt',
      expiresAt: 5,
      refreshAt: 4,
    },
  ]
  assert.equal(t.store('c.example', found), found)
  assert.equal(t.size, 0)
})

test('the template table is bounded: past it, answers are kept as they are', () => {
  const t = new AnswerTemplates(2)
  const odd = (d: string, n: number): SourceAnswer[] => [
    { source: 'txt', outcome: 'error', reason: `lookup of _linksec.${d} failed after ${n} ms` },
  ]
  assert.ok(t.store('a.example', odd('a.example', 1)) instanceof AnswerTemplate)
  assert.ok(t.store('a.example', odd('a.example', 2)) instanceof AnswerTemplate)
  const third = odd('a.example', 3)
  assert.equal(t.store('a.example', third), third)
  assert.equal(t.size, 2)
})

test('reads give fresh objects: a caller changing them cannot change the template', () => {
  const t = new AnswerTemplates()
  const kept = t.store('a.example', nothing('a.example'))
  const first = AnswerTemplates.load('a.example', kept)
  first[0]!.reason = 'changed'
  assert.deepEqual(AnswerTemplates.load('a.example', kept), nothing('a.example'))
})

test('property: whatever the domain and reasons, what is read back is what was stored', () => {
  const answer = fc
    .record({
      source: fc.constantFrom('dane', 'mta_sts', 'txt'),
      outcome: fc.constantFrom('none', 'error', 'disabled'),
      reason: fc.string(),
    })
    .map((a) => ({ ...a })) // plain objects, as the sources make them
  fc.assert(
    fc.property(fc.string(), fc.array(answer, { maxLength: 4 }), fc.string(), (domain, answers, other) => {
      const t = new AnswerTemplates()
      // Another domain's answers first, so templates are shared between names.
      t.store(
        other,
        answers.map((a) => ({ ...a, reason: a.reason.split(domain).join(other) })),
      )
      const kept = t.store(domain, answers)
      assert.deepEqual(AnswerTemplates.load(domain, kept), answers)
    }),
  )
})
