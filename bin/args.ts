/**
 * Command-line parsing for `linksec <command>`: node:util parseArgs in strict
 * mode, against the option table each command exports (OPTIONS) plus the
 * options every command takes (COMMON_OPTIONS). An unknown flag, a missing
 * value or a value given to a switch is a UsageError naming it; bin/linksec.ts
 * prints it with the command's USAGE and exits 64 (EX_USAGE).
 *
 * A new command: export USAGE and OPTIONS from bin/commands/<name>.ts, e.g.
 *   export const OPTIONS = { json: { type: 'boolean' }, out: { type: 'string' } } satisfies OptionTable
 */
import { parseArgs as parseArgv } from 'node:util'
import { loadConfig, PACKAGE_CONFIG_DIR, type LinksecConfig } from '../core/config'

/** sysexits.h EX_USAGE: the command was used wrongly (an unknown flag, a missing value). */
export const EX_USAGE = 64

export interface ParsedArgs {
  /** Positional arguments. */
  positional: string[]
  /** --flag value / --flag=value for string options, --flag (true) for boolean ones; absent when not given. */
  flags: Record<string, string | true>
}

/** A command's options: `string` takes a value (`--out F`, `--out=F`), `boolean` is a switch. */
export type OptionTable = Readonly<Record<string, { type: 'string' | 'boolean'; short?: string }>>

/** What every command takes. */
export const COMMON_OPTIONS = { config: { type: 'string' } } satisfies OptionTable

export interface CommandModule {
  /** The usage line(s), printed with a usage error. */
  USAGE: string
  /** The command's own options (COMMON_OPTIONS are added). */
  OPTIONS: OptionTable
  /** The command reads its own argv (sendmail's -fADDR, -oi): it gets every argument as a positional. */
  RAW_ARGS?: boolean
  run(args: ParsedArgs): Promise<number>
}

export class UsageError extends Error {
  override name = 'UsageError'
}

export function parseArgs(argv: readonly string[], options: OptionTable = {}): ParsedArgs {
  let parsed
  try {
    parsed = parseArgv({
      args: [...argv],
      options: { ...COMMON_OPTIONS, ...options },
      strict: true,
      allowPositionals: true,
    })
  } catch (e) {
    // node:util's messages name the flag: "Unknown option '--jsn'", "Option '--config <value>' argument missing".
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_'))
      throw new UsageError((e as Error).message)
    throw e
  }
  const flags: Record<string, string | true> = {}
  for (const [name, value] of Object.entries(parsed.values)) {
    if (typeof value === 'string') flags[name] = value
    else if (value === true) flags[name] = true
  }
  return { positional: parsed.positionals, flags }
}

export function configFromArgs(args: ParsedArgs): LinksecConfig {
  const dir = typeof args.flags.config === 'string' ? args.flags.config : PACKAGE_CONFIG_DIR
  return loadConfig(dir)
}
