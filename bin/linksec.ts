#!/usr/bin/env node
/**
 * The `linksec` command. Each subcommand lives in ./commands/<name> and
 * exports `run(argv, opts)`; every one takes `--config DIR`.
 */
import { ConfigError, describeError } from '../core/errors'
import { EX_USAGE, parseArgs, UsageError, type CommandModule, type ParsedArgs } from './args'

const COMMANDS: Record<string, string> = {
  serve: 'run the milter, the Postfix socketmap TLS-policy server and the HTTP endpoint',
  check: 'show what linksec believes of a domain, and why (each source)',
  record: "print the DNS TXT record to publish for this server's level",
  verify: 'verify the OpenPGP signature of a message file and print Authentication-Results',
  send: 'send a message (sendmail-compatible): signed, encrypted on request, straight to the MX',
  domains: 'import a shared list of link-secure domains, or export what this server knows',
  keys: 'manage the keys this server publishes over WKD (add, list, remove, generate, rotate, ca)',
  wks: 'the Web Key Service: make the submission key (init), take one message (receive)',
  tls: 'make a self-signed STARTTLS certificate for Postfix or Haraka (init, show)',
  tlsrpt: 'show or send the RFC 8460 TLS reports of a day (show, send)',
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, what]) => `  ${name.padEnd(8)} ${what}`)
  return `usage: linksec <command> [--config DIR] [options]\n\ncommands:\n${lines.join('\n')}\n`
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage())
    return name ? 0 : 2
  }
  if (!(name in COMMANDS)) {
    process.stderr.write(`linksec: unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  const mod = require(`./commands/${name}`) as CommandModule
  let args: ParsedArgs
  try {
    args = mod.RAW_ARGS ? { positional: rest, flags: {} } : parseArgs(rest, mod.OPTIONS)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    process.stderr.write(`linksec ${name}: ${e.message}\n${mod.USAGE}`)
    return EX_USAGE
  }
  return mod.run(args)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    process.stderr.write(`linksec: ${e instanceof ConfigError ? e.message : describeError(e)}\n`)
    process.exitCode = e instanceof ConfigError ? 78 : 1 // 78 = EX_CONFIG
  },
)
