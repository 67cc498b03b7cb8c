import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  LIST_MAX_ENTRIES,
  mergeIntoList,
  parsePolicyList,
  PolicyListError,
  problemLines,
  weakerIn,
} from '../../../../core/policy/policy-list'
import { parseStaticList } from '../../../../core/policy/static-list'

const NOW = Date.parse('2026-12-04T12:00:00Z')

const LIST = {
  timestamp: '2026-12-01T00:00:00Z',
  expires: '2027-01-01T00:00:00Z',
  author: 'a community',
  'policy-aliases': { big: { mode: 'enforce', mxs: ['.mx.big.example'] } },
  policies: {
    'Example.NET': { mode: 'enforce', mxs: ['.example.net'], level: 4 },
    'alias.example': { 'policy-alias': 'big', level: 3 },
    'testing.example': { mode: 'testing', mxs: [], level: 1 },
  },
}

test('policy list: the STARTTLS-Everywhere shape plus level parses, aliases resolved, names lower-cased', () => {
  const l = parsePolicyList(JSON.stringify(LIST), NOW)
  assert.deepEqual(l.problems, [])
  assert.deepEqual([...l.entries.keys()], ['example.net', 'alias.example', 'testing.example'])
  assert.deepEqual(l.entries.get('alias.example'), { mode: 'enforce', mxs: ['.mx.big.example'], level: 3 })
  assert.equal(l.expires, Date.parse(LIST.expires))
  assert.equal(l.author, 'a community')
})

test('policy list: fatal problems are errors that say what is wrong', () => {
  const fatal = (text: string, re: RegExp) =>
    assert.throws(
      () => parsePolicyList(text, NOW),
      (e: unknown) => e instanceof PolicyListError && re.test(e.message),
    )
  fatal('{"policies": {', /not valid JSON/)
  fatal('[1,2]', /a JSON list, not an object/)
  fatal('{}', /no "policies" object/)
  fatal('{"policies": []}', /"policies" is a list/)
  fatal('{"policies": {}, "policy-aliases": 3}', /"policy-aliases" is a number/)
  fatal('{"policies": {}, "expires": "soon"}', /"expires" is "soon", not a date/)
  fatal(
    '{"policies": {}, "expires": "2020-01-01T00:00:00Z"}',
    /expired at 2020-01-01T00:00:00\.000Z.*nothing was imported/,
  )
})

test('policy list: each bad entry is a problem naming the entry and the field', () => {
  const policies = {
    'level-string.example': { mode: 'enforce', level: '3' },
    'level-big.example': { level: 9 },
    'mode-number.example': { mode: 1 },
    'mxs-string.example': { mxs: 'mx.example' },
    'mx-bad.example': { mxs: ['mx .example'] },
    'entry-list.example': [],
    'alias-missing.example': { 'policy-alias': 'constructor' },
    'expired.example': { level: 3, 'linksec-expires': '2026-01-01T00:00:00Z' },
    PROTO: { level: 3 },
    '-bad-.example': {},
    '192.0.2.1': {},
    com: {},
    'dup.example': { level: 1 },
    'DUP.example.': { level: 4 },
    'ok.example': { level: 2 },
  }
  // An object literal cannot hold an own "__proto__" key; JSON text can.
  const text = JSON.stringify({ 'policy-aliases': {}, policies }).replace('"PROTO":', '"__proto__":')
  const l = parsePolicyList(text, NOW)
  const why = Object.fromEntries(l.problems.map((p) => [p.domain, p.reason]))
  assert.match(why['level-string.example']!, /level is a string, not a number 0-4/)
  assert.match(why['level-big.example']!, /level 9 is not 0-4/)
  assert.match(why['mode-number.example']!, /mode is a number/)
  assert.match(why['mxs-string.example']!, /mxs is a string, not a list/)
  assert.match(why['mx-bad.example']!, /mx pattern "mx \.example"/)
  assert.match(why['entry-list.example']!, /is a list, not an object/)
  assert.match(why['alias-missing.example']!, /policy-alias "constructor" is not defined/)
  assert.match(why['expired.example']!, /expired at 2026-01-01/)
  for (const n of ['"__proto__"', '"-bad-.example"', '"192.0.2.1"', '"com"'])
    assert.match(why[n]!, /not a domain name/, n)
  assert.match(why['dup.example']!, /listed twice \(as "dup\.example" and "DUP\.example\."\)/)
  assert.deepEqual([...l.entries.keys()], ['ok.example'])
  assert.equal(Object.getPrototypeOf({}), Object.prototype, 'no prototype was touched')
})

test('policy list: hostile input is bounded (huge, many entries, deep nesting, long names)', () => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000)
  const l = parsePolicyList(`{"policies": {"deep.example": {"mode": "enforce", "mxs": ${deep}}}}`, NOW)
  assert.match(l.problems[0]!.reason, /not a host name/)
  assert.throws(() => parsePolicyList(' '.repeat(17 * 1024 * 1024), NOW), /larger than 16 MiB/)
  const many: Record<string, unknown> = {}
  for (let i = 0; i <= LIST_MAX_ENTRIES; i++) many[`d${i}.example`] = {}
  assert.throws(() => parsePolicyList(JSON.stringify({ policies: many }), NOW), /at most 200000/)
  const long = `${'a'.repeat(63)}.`.repeat(5) + 'example'
  const bad = parsePolicyList(
    JSON.stringify({ policies: { [long]: {}, 'x\u0000y.example': {}, 'ü.example': {} } }),
    NOW,
  )
  assert.equal(bad.problems.length, 3)
  assert.ok(
    bad.problems.every((p) => p.domain.length < 100),
    'names are shortened in messages',
  )
  assert.match(bad.problems[1]!.domain, /\\u0000/, 'controls are escaped')
  const lots = parsePolicyList(
    JSON.stringify({ policies: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`b${i}`, {}])) }),
    NOW,
  )
  const lines = problemLines(lots.problems)
  assert.equal(lines.length, 21)
  assert.equal(lines[20], '… and 30 more')
})

test('merge: never weakens a stricter entry unless asked, and says what it kept', () => {
  const existing = {
    'strict.example': { mode: 'enforce', mxs: ['.strict.example'], level: 4 },
    'weak.example': { mode: 'testing', mxs: [], level: 1 },
    'same.example': { mode: 'enforce', mxs: [], level: 3 },
    'broken.example': { level: 'x' },
  }
  const incoming = parsePolicyList(
    JSON.stringify({
      policies: {
        'strict.example': { mode: 'enforce', mxs: [], level: 3 },
        'weak.example': { mode: 'enforce', mxs: ['.weak.example'], level: 3 },
        'same.example': { mode: 'enforce', mxs: [], level: 3 },
        'broken.example': { level: 2 },
        'new.example': { level: 2, mode: 'testing' },
      },
    }),
    NOW,
  ).entries
  const m = mergeIntoList(existing, {}, incoming, { source: 'list.json', now: NOW, allowWeaker: false })
  const note = Object.fromEntries(m.notes.map((n) => [n.domain, n]))
  assert.equal(note['strict.example']!.action, 'kept')
  assert.match(
    note['strict.example']!.text,
    /kept the stricter entry here \(mode enforce, level 4, mxs \.strict\.example\).*level 3 < 4.*no mxs/,
  )
  assert.deepEqual(m.policies['strict.example'], existing['strict.example'])
  assert.equal(note['weak.example']!.action, 'updated')
  assert.equal(note['same.example']!.action, 'unchanged')
  assert.equal(note['broken.example']!.action, 'updated')
  assert.equal(note['new.example']!.action, 'added')
  assert.deepEqual(m.policies['new.example'], {
    mode: 'testing',
    mxs: [],
    level: 2,
    'linksec-source': 'list.json',
    'linksec-imported': new Date(NOW).toISOString(),
  })
  // The merged file is a valid static list.
  assert.equal(parseStaticList({ policies: m.policies }).list.get('weak.example')?.level, 3)

  const w = mergeIntoList(existing, {}, incoming, { source: 'list.json', now: NOW, allowWeaker: true })
  assert.equal(w.notes.find((n) => n.domain === 'strict.example')!.action, 'weakened')
  assert.equal((w.policies['strict.example'] as { level: number }).level, 3)
})

test('merge: a pinned domain CA is kept and carried; dropping or replacing it counts as weaker', () => {
  const A = 'A'.repeat(40)
  const B = 'B'.repeat(40)
  const incoming = parsePolicyList(
    JSON.stringify({
      policies: {
        'pinned.example': { level: 3 },
        'other.example': { level: 3, ca: B },
        'new.example': { level: 2, ca: A.toLowerCase() },
      },
    }),
    NOW,
  ).entries
  const existing = { 'pinned.example': { level: 3, ca: A }, 'other.example': { level: 3, ca: A } }
  const m = mergeIntoList(existing, {}, incoming, { source: 'l.json', now: NOW, allowWeaker: false })
  const note = Object.fromEntries(m.notes.map((n) => [n.domain, n]))
  assert.equal(note['pinned.example']!.action, 'kept')
  assert.match(note['pinned.example']!.text, /no domain CA pin \(A{40}\)/)
  assert.equal(note['other.example']!.action, 'kept')
  assert.match(note['other.example']!.text, /another domain CA/)
  assert.equal((m.policies['new.example'] as { ca: string }).ca, A, 'the pin is written into the list')
  assert.deepEqual(existing['pinned.example'], m.policies['pinned.example'])
  const deep = parsePolicyList(
    `{"policies": {"d.example": {"ca": ${'['.repeat(50_000)}${']'.repeat(50_000)}}}}`,
    NOW,
  )
  assert.match(deep.problems[0]!.reason, /ca a list is not an OpenPGP fingerprint/)
})

test('weakerIn: mode, level (enforce counts as 3) and lost mx pinning', () => {
  const e = (mode: 'enforce' | 'testing' | 'none', level?: 0 | 1 | 2 | 3 | 4, mxs: string[] = []) => ({
    mode,
    level,
    mxs,
  })
  assert.equal(weakerIn(e('enforce', undefined), e('testing', 3)), undefined)
  assert.match(weakerIn(e('testing', 3), e('enforce'))!, /mode testing < enforce/)
  assert.match(weakerIn(e('none', 2), e('none', 3))!, /level 2 < 3/)
  assert.equal(weakerIn(e('enforce', 4, ['.a.example']), e('enforce', 4, ['.b.example'])), undefined)
})

test('static list: an imported learned entry whose linksec-expires passed is skipped', () => {
  const { list, problems } = parseStaticList(
    {
      policies: {
        'old.example': { level: 3, 'linksec-expires': '2026-12-01T00:00:00Z' },
        'live.example': { level: 3, 'linksec-expires': '2027-12-01T00:00:00Z' },
      },
    },
    NOW,
  )
  assert.equal(list.get('old.example'), undefined)
  assert.equal(list.get('live.example')?.level, 3)
  assert.match(problems[0]!.reason, /expired/)
})
