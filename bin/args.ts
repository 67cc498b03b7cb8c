import { loadConfig, PACKAGE_CONFIG_DIR, type LinksecConfig } from '../core/config'

export interface ParsedArgs {
  /** Positional arguments. */
  positional: string[]
  /** --flag value / --flag=value / --flag (true). */
  flags: Record<string, string | true>
}

export interface CommandModule {
  run(args: ParsedArgs): Promise<number>
}

export function parseArgs(argv: string[]): ParsedArgs {
  const out: ParsedArgs = { positional: [], flags: {} }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') {
      out.positional.push(...argv.slice(i + 1))
      break
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      if (eq > 0) out.flags[a.slice(2, eq)] = a.slice(eq + 1)
      else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--') && VALUE_FLAGS.has(a.slice(2)))
        out.flags[a.slice(2)] = argv[++i]!
      else out.flags[a.slice(2)] = true
    } else out.positional.push(a)
  }
  return out
}

/** Flags that take a value (others are switches). */
const VALUE_FLAGS = new Set([
  'config',
  'listen',
  'format',
  'domain',
  'level',
  'out',
  'sig',
  'haraka',
  'hostname',
  'date',
  'rsa',
])

export function configFromArgs(args: ParsedArgs): LinksecConfig {
  const dir = typeof args.flags.config === 'string' ? args.flags.config : PACKAGE_CONFIG_DIR
  return loadConfig(dir)
}
