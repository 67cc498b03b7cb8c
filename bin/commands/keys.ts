/**
 * `linksec keys add|list|remove [--config DIR]`: manages the keys this server
 * publishes over WKD (the files in `[keys] dir`).
 *
 *   linksec keys add FILE [ADDRESS]   stores the key for ADDRESS (or its only address);
 *                                     refuses a key without a user ID for it
 *   linksec keys list                 address, fingerprint, status, WKD hash
 *   linksec keys remove ADDRESS
 */
import * as fs from 'node:fs'
import { configFromArgs, type ParsedArgs } from '../args'
import { describeError, isLinksecError } from '../../core/errors'
import { keyStoreFor, parseAddress, wkdHash, type KeyStore } from '../../core/keys'
import { signerEntries } from '../../core/keys/material'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'

const USAGE = `usage: linksec keys add FILE [ADDRESS] | list | remove ADDRESS  [--config DIR]\n`

export async function run(args: ParsedArgs): Promise<number> {
  const [sub, ...rest] = args.positional
  const rt = createRuntime(configFromArgs(args), { metrics: createMetrics({ processMetrics: false }) })
  const store = keyStoreFor(rt)
  try {
    if (sub === 'add' && rest.length >= 1 && rest.length <= 2)
      return await add(store, rest[0]!, addressArg(args, rest[1]))
    if (sub === 'list' && rest.length === 0) return await list(store, rt.now())
    if (sub === 'remove' && rest.length === 1) return await remove(store, rest[0]!)
  } catch (e) {
    process.stderr.write(`linksec keys ${sub}: ${isLinksecError(e) ? e.message : describeError(e)}\n`)
    return 1
  }
  process.stderr.write(USAGE)
  return 2
}

function addressArg(args: ParsedArgs, positional: string | undefined): string | undefined {
  return typeof args.flags.address === 'string' ? args.flags.address : positional
}

async function add(store: KeyStore, file: string, address: string | undefined): Promise<number> {
  const data = fs.readFileSync(file === '-' ? 0 : file)
  const k = await store.add(data, address)
  const fprs = k.ring.keys.map((x) => x.getFingerprint().toUpperCase()).join(', ')
  process.stdout.write(`added ${k.address} (${fprs}) as ${k.file}\n`)
  return 0
}

async function list(store: KeyStore, now: number): Promise<number> {
  const keys = await store.list()
  if (keys.length === 0) process.stdout.write(`no keys in ${store.dir}\n`)
  for (const k of keys) {
    const a = parseAddress(k.address)
    const entries = await signerEntries(k.ring, new Date(now))
    for (const key of k.ring.keys) {
      const fpr = key.getFingerprint().toUpperCase()
      const mine = entries.filter((e) => e.primaryFingerprint === fpr)
      const canSign = mine.some((e) => e.status === 'valid')
      const why = mine.find((e) => e.status !== 'valid' && e.keyId === key.getKeyID().toHex().toUpperCase())
      const status = canSign ? 'valid' : (why?.status ?? 'not_signing')
      process.stdout.write(`${k.address}\t${fpr}\t${status}\twkd=${a ? wkdHash(a.local) : '?'}\t${k.file}\n`)
    }
  }
  return 0
}

async function remove(store: KeyStore, address: string): Promise<number> {
  if (await store.remove(address)) {
    process.stdout.write(`removed ${address}\n`)
    return 0
  }
  process.stderr.write(`linksec keys remove: no key for ${address} in ${store.dir}\n`)
  return 1
}
