/**
 * Rotation (core/keys/store.ts): `keys add` never replaces a published key
 * silently; a rotated key stays published beside its successor for the
 * overlap (WKD serves both, concatenated), so mail signed with it before the
 * rotation still passes; once the overlap is over (injected clock) it leaves
 * WKD by itself and its mail no longer passes.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../../../core/config'
import { createWkdHandler } from '../../../../core/http/wkd'
import { keyStoreFor } from '../../../../core/keys'
import { parseAddress } from '../../../../core/keys/address'
import { createKeyFinder } from '../../../../core/keys/finder'
import { readKeyBlob } from '../../../../core/keys/material'
import { wkdHash, wkdUrls } from '../../../../core/keys/names'
import { KeyStore } from '../../../../core/keys/store'
import { silentLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import type { DnsClient, HttpsClient } from '../../../../core/net/types'
import { createRuntime, type Runtime } from '../../../../core/runtime'
import { verifyMessage } from '../../../../core/verify'
import { assembleSigned, textPart } from '../../../helpers/signers'

const alice = parseAddress('alice@rot.test')!
const DAY = 24 * 3600 * 1000
let dir: string
let oldKey: openpgp.PrivateKey
let newKey: openpgp.PrivateKey
const pub = (k: openpgp.PrivateKey) => Buffer.from(k.toPublic().write())
const fpr = (k: openpgp.PrivateKey) => k.getFingerprint().toUpperCase()

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-rotation-'))
  const gen = async () =>
    (
      await openpgp.generateKey({
        userIDs: [{ email: alice.address }],
        format: 'object',
        date: new Date(Date.now() - DAY),
      })
    ).privateKey
  oldKey = await gen()
  newKey = await gen()
})
after(() => fs.rmSync(dir, { recursive: true, force: true }))

async function signed(key: openpgp.PrivateKey, date: Date): Promise<Buffer> {
  const inner = textPart('signed before the rotation\n')
  const m = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message: m, signingKeys: key, detached: true, date })) as string
  return assembleSigned({ from: `Alice <${alice.address}>` }, inner, sig)
}

test('keys add refuses another key for the address without replace, naming the published fingerprint', async () => {
  const store = new KeyStore(path.join(dir, 'add'))
  await store.add(pub(oldKey))
  await assert.rejects(store.add(pub(newKey)), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'LINKSEC_KEY_EXISTS')
    assert.match(e.message, new RegExp(`already has the key ${fpr(oldKey)}; add --replace`))
    return true
  })
  assert.deepEqual(
    (await store.lookup(alice.address))!.keys.map((k) => k.getFingerprint().toUpperCase()),
    [fpr(oldKey)],
  )
  // The same key again is an update, not a replacement.
  await store.add(pub(oldKey))
  await store.add(pub(newKey), undefined, { replace: true })
  assert.deepEqual(
    (await store.lookup(alice.address))!.keys.map((k) => k.getFingerprint().toUpperCase()),
    [fpr(newKey)],
  )
})

/** The WKD handler of a runtime, on a loopback port; returns the body for alice's direct URL. */
async function wkdBody(rt: Runtime): Promise<Buffer> {
  const handler = createWkdHandler(rt)
  const server = http.createServer((req, res) => void handler(req, res))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  try {
    const port = (server.address() as AddressInfo).port
    const hash = wkdHash('alice')
    return await new Promise<Buffer>((resolve, reject) => {
      const target = { host: '127.0.0.1', port, path: `/.well-known/openpgpkey/hu/${hash}?l=alice` }
      // fetch() would send Host 127.0.0.1; the direct layout takes the domain from Host.
      http
        .get({ ...target, headers: { host: 'rot.test' } }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            res.statusCode === 200
              ? resolve(Buffer.concat(chunks))
              : reject(new Error(`WKD answered HTTP ${res.statusCode}`)),
          )
        })
        .on('error', reject)
    })
  } finally {
    server.close()
  }
}

async function verifyFrom(rt: Runtime, body: Buffer, message: Buffer) {
  const url = wkdUrls(alice).direct
  const dns: DnsClient = { query: async () => ({ rcode: 'NXDOMAIN', authenticated: false, records: [] }) }
  const https: HttpsClient = {
    get: async (u) => ({
      status: u === url ? 200 : 404,
      headers: {},
      body: u === url ? body : Buffer.alloc(0),
      url: u,
    }),
  }
  const finder = createKeyFinder({
    methods: ['wkd'],
    store: new KeyStore(path.join(dir, 'none')),
    remote: { dns, https },
    now: rt.now,
    cacheMax: 10,
    positiveTtlMs: 1,
    negativeTtlMs: 1,
  })
  return verifyMessage(rt, message, { finder, signaturePolicy: async () => 'optional' })
}

test('rotate: both keys served over WKD during the overlap, the old one gone after it', async () => {
  const conf = path.join(dir, 'conf')
  fs.mkdirSync(conf)
  let now = Date.now()
  const rt = createRuntime(parseConfig({ main: { authserv_id: 'mx.test' } }, conf), {
    log: silentLogger,
    metrics: createMetrics({ processMetrics: false }),
    now: () => now,
  })
  const store = keyStoreFor(rt)
  await store.add(pub(oldKey))
  const queued = await signed(oldKey, new Date(now - 60_000))
  const stored = await store.rotate(pub(newKey), alice.address, 7 * DAY)
  assert.equal(stored.retiring?.get(fpr(oldKey)), now + 7 * DAY)

  // Day 6: WKD answers one body holding both keys; mail from either passes.
  now += 6 * DAY
  const during = await wkdBody(rt)
  assert.deepEqual(
    (await readKeyBlob(during)).map((k) => k.getFingerprint().toUpperCase()).sort(),
    [fpr(oldKey), fpr(newKey)].sort(),
  )
  const oldDuring = await verifyFrom(rt, during, queued)
  assert.equal(oldDuring.result, 'pass', oldDuring.facts.reason)
  const fresh = await verifyFrom(rt, during, await signed(newKey, new Date(now)))
  assert.equal(fresh.result, 'pass', fresh.facts.reason)

  // Day 8: the old key has left WKD and its file; its mail no longer passes.
  now += 2 * DAY
  const afterOverlap = await wkdBody(rt)
  assert.deepEqual(
    (await readKeyBlob(afterOverlap)).map((k) => k.getFingerprint().toUpperCase()),
    [fpr(newKey)],
  )
  const keysDir = path.join(conf, 'keys')
  assert.equal(fs.existsSync(path.join(keysDir, 'alice@rot.test.pgp.retire')), false)
  const onDisk = await readKeyBlob(fs.readFileSync(path.join(keysDir, 'alice@rot.test.pgp')))
  assert.deepEqual(
    onDisk.map((k) => k.getFingerprint().toUpperCase()),
    [fpr(newKey)],
  )
  const oldAfter = await verifyFrom(rt, afterOverlap, queued)
  assert.equal(oldAfter.result, 'fail', oldAfter.facts.reason)
})

test('rotate refuses an address with nothing published', async () => {
  const store = new KeyStore(path.join(dir, 'empty'))
  await assert.rejects(store.rotate(pub(newKey), alice.address, DAY), /no published key to rotate/)
})
