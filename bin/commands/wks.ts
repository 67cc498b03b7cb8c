/**
 * `linksec wks init|receive [--config DIR]`: the Web Key Service (core/wks,
 * draft-koch-openpgp-webkey-service).
 *
 *   linksec wks init [DOMAIN] [--replace]
 *       the submission key for key-submission@DOMAIN (default [main] domain):
 *       Ed25519 with a Curve25519 encryption subkey (clients encrypt their
 *       submission to it); secret in [sign] secret_dir, public over WKD
 *   linksec wks receive [--to ADDRESS] [--print] < message
 *       one message to the submission address, as the adapters take it:
 *       a submission gets its confirmation request (through [wks] relay, or
 *       on stdout with --print), a valid confirmation publishes the key.
 *       Exit 0 done, 1 refused (the reason on stderr), 75 relay failed.
 */
import * as fs from 'node:fs'
import * as openpgp from 'openpgp'
import { describeError, isLinksecError } from '../../core/errors'
import { caStoreFor, keyStoreFor, parseAddress } from '../../core/keys'
import { createMetrics } from '../../core/metrics'
import { headerValue, parseEntity, toCrlf } from '../../core/mime'
import { createRuntime, type Runtime } from '../../core/runtime'
import { secretStoreFor } from '../../core/sign/step'
import { receiveWks, sendWksMail, submissionAddress, submissionKey } from '../../core/wks'
import { configFromArgs, type OptionTable, type ParsedArgs } from '../args'

export const USAGE =
  'usage: linksec wks init [DOMAIN] [--replace] | receive [--to ADDRESS] [--print] < message  [--config DIR]\n'

export const OPTIONS = {
  to: { type: 'string' },
  print: { type: 'boolean' },
  replace: { type: 'boolean' },
} satisfies OptionTable

const EX_TEMPFAIL = 75

export async function run(args: ParsedArgs): Promise<number> {
  const [sub, ...rest] = args.positional
  const rt = createRuntime(configFromArgs(args), { metrics: createMetrics({ processMetrics: false }) })
  try {
    if (sub === 'init' && rest.length <= 1) return await init(rt, rest[0], args.flags.replace === true)
    if (sub === 'receive' && rest.length === 0) return await receive(rt, args)
  } catch (e) {
    process.stderr.write(`linksec wks ${sub}: ${isLinksecError(e) ? e.message : describeError(e)}\n`)
    return 1
  } finally {
    await rt.engine.close()
  }
  process.stderr.write(USAGE)
  return 2
}

async function init(rt: Runtime, domainArg: string | undefined, replace: boolean): Promise<number> {
  const domain = (domainArg ?? rt.config.main.domain).toLowerCase()
  if (!domain) {
    process.stderr.write('linksec wks init: name the domain, or set [main] domain\n')
    return 2
  }
  const sa = submissionAddress(rt, domain)
  const existing = await submissionKey(rt, domain)
  if (existing && !replace) {
    process.stderr.write(
      `linksec wks init: ${sa} already has the key ${existing.getFingerprint().toUpperCase()}; add --replace to make a new one\n`,
    )
    return 1
  }
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ email: sa }],
    // One encryption subkey (openpgp.js's default): submissions and confirmations are encrypted to it.
    subkeys: [{}],
    format: 'object',
  })
  const saved = await secretStoreFor(rt).save(Buffer.from(privateKey.write()), sa)
  const pub = await caStoreFor(rt).certify(privateKey.toPublic())
  const stored = await keyStoreFor(rt).add(Buffer.from(pub.write()), sa, { replace: true })
  process.stdout.write(
    `submission key for ${domain}: ${sa} (${privateKey.getFingerprint().toUpperCase()}), secret ${saved.file}, published ${stored.file}\n` +
      (rt.config.wks.enabled ? '' : 'set [wks] enabled=true to take submissions\n'),
  )
  return 0
}

async function receive(rt: Runtime, args: ParsedArgs): Promise<number> {
  const raw = fs.readFileSync(0)
  const to =
    typeof args.flags.to === 'string'
      ? args.flags.to
      : (parseAddress(headerValue(parseEntity(toCrlf(raw)).headers, 'to') ?? '')?.address ?? '')
  const r = await receiveWks(rt, raw, to)
  if ('reason' in r) {
    process.stderr.write(`linksec wks receive: refused (${r.outcome}): ${r.reason}\n`)
    return 1
  }
  if (r.outcome === 'published') {
    process.stderr.write(`published ${r.address} (${r.fingerprint}) as ${r.stored.file}\n`)
    return 0
  }
  if (args.flags.print === true) {
    process.stdout.write(r.reply.raw)
    return 0
  }
  try {
    await sendWksMail(rt, r.reply)
  } catch (e) {
    process.stderr.write(
      `linksec wks receive: the confirmation request could not be sent: ${describeError(e)}\n`,
    )
    return EX_TEMPFAIL
  }
  process.stderr.write(
    `confirmation request for ${r.address} (${r.fingerprint}) sent through ${rt.config.wks.relay}\n`,
  )
  return 0
}
