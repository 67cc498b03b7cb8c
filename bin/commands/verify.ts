/**
 * `linksec verify <file.eml|-> [--config DIR] [--format text|json]`: checks
 * one message with the same config (and key discovery) as the adapters and
 * prints our Authentication-Results field and the verdict.
 * Exit status: 0 the message would pass through, 1 it would be rejected or
 * quarantined, 75 (EX_TEMPFAIL) a temporary failure, 2 usage.
 */
import * as fs from 'node:fs'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { formatReply } from '../../core/verdict'
import { verifyMessage } from '../../core/verify'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

export const USAGE = 'usage: linksec verify <file.eml | -> [--config DIR] [--format text|json]\n'

export const OPTIONS = { format: { type: 'string' } } satisfies OptionTable

export async function run(args: ParsedArgs): Promise<number> {
  const file = args.positional[0]
  if (!file || args.positional.length > 1) {
    process.stderr.write(USAGE)
    return 2
  }
  const raw = readInput(file)
  if (!raw) return 2
  const rt = createRuntime(configFromArgs(args), { metrics: createMetrics({ processMetrics: false }) })
  const d = await verifyMessage(rt, raw)
  const header = d.headers.find((h) => h.op === 'prepend')
  const line = header && header.op === 'prepend' ? `${header.name}: ${header.value}` : ''
  const reply = formatReply(d.verdict)
  if (args.flags.format === 'json') {
    const out = {
      result: d.result,
      reason: d.facts.reason,
      from: d.facts.from,
      fingerprint: d.facts.fingerprint,
      keySource: d.facts.keySource,
      header: line,
      verdict: d.verdict,
      reply,
    }
    process.stdout.write(JSON.stringify(out, null, 2) + '\n')
  } else {
    process.stdout.write(`${line}\nverdict: ${d.verdict.action}${reply ? ` (${reply})` : ''}\n`)
  }
  if (d.verdict.action === 'tempfail') return 75
  return d.verdict.action === 'reject' || d.verdict.action === 'quarantine' ? 1 : 0
}

function readInput(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file === '-' ? 0 : file)
  } catch (e) {
    process.stderr.write(`linksec verify: cannot read ${file}: ${(e as Error).message}\n`)
    return undefined
  }
}
