import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { describe, it } from 'node:test'
import { EX_USAGE, parseArgs, UsageError } from '../../../bin/args'

const LINKSEC = path.resolve(__dirname, '..', '..', '..', 'bin', 'linksec.js')

describe('parseArgs (strict, per-command table)', () => {
  const table = { json: { type: 'boolean' }, out: { type: 'string' } } as const

  it('reads switches, values in both spellings, --config and positionals', () => {
    assert.deepEqual(parseArgs(['a', '--json', '--out', 'f', '--config=/etc/linksec', 'b'], table), {
      positional: ['a', 'b'],
      flags: { json: true, out: 'f', config: '/etc/linksec' },
    })
    assert.deepEqual(parseArgs(['--out=x', '-', '--', '--json'], table), {
      positional: ['-', '--json'],
      flags: { out: 'x' },
    })
  })

  it('refuses an unknown flag, naming it', () => {
    assert.throws(
      () => parseArgs(['--jsn'], table),
      (e: unknown) => {
        assert.ok(e instanceof UsageError)
        assert.match(e.message, /Unknown option '--jsn'/)
        return true
      },
    )
  })

  it('refuses a missing value and a value given to a switch', () => {
    assert.throws(() => parseArgs(['--out'], table), /--out/)
    assert.throws(() => parseArgs(['--json=yes'], table), /--json/)
    assert.throws(() => parseArgs(['--config'], table), /--config/)
  })
})

describe('linksec <command> with a flag it does not take', () => {
  const cases: [string, string[], RegExp][] = [
    ['serve', ['--listen', 'x'], /usage: linksec serve/],
    ['check', ['example.org', '--jsn'], /usage: linksec check/],
    ['record', ['--sig'], /usage: linksec record/],
    ['verify', ['m.eml', '--json'], /usage: linksec verify/],
    ['keys', ['list', '--force'], /usage: linksec keys/],
    ['tls', ['init', '--haraka'], /usage: linksec tls/],
    ['tlsrpt', ['show', '--day', 'today'], /usage: linksec tlsrpt/],
  ]
  for (const [command, args, usage] of cases) {
    it(`${command} ${args.join(' ')}: exit 64 (EX_USAGE), the flag named, the usage line`, () => {
      const r = spawnSync(process.execPath, [LINKSEC, command, ...args], {
        encoding: 'utf8',
        timeout: 20_000,
      })
      assert.equal(r.status, EX_USAGE, r.stderr)
      const flag = args.find((a) => a.startsWith('--'))!
      assert.ok(r.stderr.includes(`'${flag}`), `${flag} named in: ${r.stderr}`)
      assert.match(r.stderr, usage)
      assert.equal(r.stdout, '')
    })
  }
})
