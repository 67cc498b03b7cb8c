import { test } from 'node:test'
import assert from 'node:assert/strict'
import { combine } from '../../../../core/policy/combine'
import type { DomainPolicy, SourceAnswer } from '../../../../core/policy/types'

const found = (a: Partial<SourceAnswer> & Pick<SourceAnswer, 'source'>): SourceAnswer => ({
  outcome: 'found',
  reason: 'r',
  ...a,
})
const none = (source: SourceAnswer['source']): SourceAnswer => ({ source, outcome: 'none', reason: 'r' })
const error = (source: SourceAnswer['source']): SourceAnswer => ({ source, outcome: 'error', reason: 'r' })

const DANE = found({ source: 'dane', level: 3, tlsMode: 'dane-only', mxPatterns: ['mx.d.test'] })
const STS = found({ source: 'mta_sts', level: 3, tlsMode: 'secure', mxPatterns: ['*.d.test'] })
const STS_TESTING = found({ source: 'mta_sts', mxPatterns: ['*.d.test'] })
const STATIC_ENF = found({ source: 'static', level: 3, tlsMode: 'secure', mxPatterns: ['.s.test'] })
const TXT4 = found({ source: 'txt', level: 4, tlsMode: 'encrypt', signatures: 'required' })
const TXT1 = found({ source: 'txt', level: 1, tlsMode: 'encrypt', signatures: 'optional' })
const TXT0 = found({ source: 'txt', level: 0, signatures: 'optional' })
const LEARNED2 = found({ source: 'learned', level: 2, tlsMode: 'encrypt' })

type Row = [
  string,
  SourceAnswer[],
  Pick<DomainPolicy, 'level' | 'tlsMode' | 'decidedBy' | 'temporaryFailure' | 'tlsModeUncertain'> & {
    mx?: string[]
  },
]

// The combination rule of core/policy/combine.ts, as a table.
// prettier-ignore
const TABLE: Row[] = [
  ['nothing known', [none('dane'), none('mta_sts'), none('txt')], { level: 0, tlsMode: 'none', decidedBy: 'none', temporaryFailure: false, tlsModeUncertain: false }],
  ['DANE alone', [DANE], { level: 3, tlsMode: 'dane-only', decidedBy: 'dane', temporaryFailure: false, tlsModeUncertain: false, mx: ['mx.d.test'] }],
  ['MTA-STS alone', [STS], { level: 3, tlsMode: 'secure', decidedBy: 'mta_sts', temporaryFailure: false, tlsModeUncertain: false, mx: ['*.d.test'] }],
  ['MTA-STS testing says nothing', [STS_TESTING], { level: 0, tlsMode: 'none', decidedBy: 'none', temporaryFailure: false, tlsModeUncertain: false }],
  ['TXT alone', [TXT4], { level: 4, tlsMode: 'encrypt', decidedBy: 'txt', temporaryFailure: false, tlsModeUncertain: false }],
  ['TXT level 0', [TXT0], { level: 0, tlsMode: 'none', decidedBy: 'none', temporaryFailure: false, tlsModeUncertain: false }],
  ['learned alone', [LEARNED2], { level: 2, tlsMode: 'encrypt', decidedBy: 'learned', temporaryFailure: false, tlsModeUncertain: false }],
  ['DANE beats MTA-STS', [STS, DANE], { level: 3, tlsMode: 'dane-only', decidedBy: 'dane', temporaryFailure: false, tlsModeUncertain: false, mx: ['mx.d.test'] }],
  ['static beats MTA-STS on a tie', [STS, STATIC_ENF], { level: 3, tlsMode: 'secure', decidedBy: 'static', temporaryFailure: false, tlsModeUncertain: false, mx: ['.s.test'] }],
  ['DANE beats static', [STATIC_ENF, DANE], { level: 3, tlsMode: 'dane-only', decidedBy: 'dane', temporaryFailure: false, tlsModeUncertain: false }],
  ['TXT level 4 raises the level, MTA-STS keeps the mode', [STS, TXT4], { level: 4, tlsMode: 'secure', decidedBy: 'mta_sts', temporaryFailure: false, tlsModeUncertain: false }],
  ['a lower TXT never cancels MTA-STS level 3', [STS, TXT1], { level: 3, tlsMode: 'secure', decidedBy: 'mta_sts', temporaryFailure: false, tlsModeUncertain: false }],
  ['stale MTA-STS still counts', [{ ...STS, outcome: 'stale' }], { level: 3, tlsMode: 'secure', decidedBy: 'mta_sts', temporaryFailure: false, tlsModeUncertain: false }],
  ['DANE failed, nothing else: uncertain', [error('dane'), none('mta_sts'), none('txt')], { level: 0, tlsMode: 'none', decidedBy: 'none', temporaryFailure: true, tlsModeUncertain: true }],
  ['DANE failed under MTA-STS: TLS could be stronger', [error('dane'), STS], { level: 3, tlsMode: 'secure', decidedBy: 'mta_sts', temporaryFailure: true, tlsModeUncertain: true }],
  ['TXT failed under MTA-STS: only the level is uncertain', [STS, error('txt')], { level: 3, tlsMode: 'secure', decidedBy: 'mta_sts', temporaryFailure: true, tlsModeUncertain: false }],
  ['MTA-STS failed under DANE: nothing uncertain but the level', [DANE, error('mta_sts'), TXT4], { level: 4, tlsMode: 'dane-only', decidedBy: 'dane', temporaryFailure: false, tlsModeUncertain: false }],
  ['TXT failed when level 4 is already known from learned', [found({ source: 'learned', level: 4, tlsMode: 'encrypt' }), error('txt')], { level: 4, tlsMode: 'encrypt', decidedBy: 'learned', temporaryFailure: false, tlsModeUncertain: false }],
  ['disabled sources say nothing', [{ source: 'dane', outcome: 'disabled', reason: 'off' }], { level: 0, tlsMode: 'none', decidedBy: 'none', temporaryFailure: false, tlsModeUncertain: false }],
]

for (const [name, answers, want] of TABLE) {
  test(`combine: ${name}`, () => {
    const p = combine('d.test', answers)
    assert.equal(p.level, want.level)
    assert.equal(p.tlsMode, want.tlsMode)
    assert.equal(p.decidedBy, want.decidedBy)
    assert.equal(p.temporaryFailure, want.temporaryFailure)
    assert.equal(p.tlsModeUncertain, want.tlsModeUncertain)
    if (want.mx) assert.deepEqual(p.mxPatterns, want.mx)
    assert.equal(p.sources.length, answers.length)
  })
}

test('combine: signatures come from a counting TXT answer only', () => {
  assert.equal(combine('d.test', [TXT4]).signatures, 'required')
  assert.equal(combine('d.test', [TXT1]).signatures, 'optional')
  assert.equal(combine('d.test', [STS]).signatures, 'unknown')
  assert.equal(combine('d.test', [error('txt')]).signatures, 'unknown')
})

test('combine: answer order does not change the decision', () => {
  const a = combine('d.test', [TXT4, STS, STATIC_ENF, DANE, LEARNED2])
  const b = combine('d.test', [DANE, LEARNED2, STATIC_ENF, TXT4, STS])
  assert.deepEqual({ ...a, sources: [] }, { ...b, sources: [] })
})
