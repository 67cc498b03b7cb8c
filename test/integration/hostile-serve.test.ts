/**
 * One hostile message must not stall `linksec serve` (issue 12, item 2): a
 * 10 MB signed part with 5,000 copies of a signature packet naming the
 * sender's real key, and the same part with the largest number of
 * signatures still checked (8, all invalid), go through the milter while a
 * probe asks /healthz every 20 ms. The test asserts the verdicts and that
 * every probe was answered; the worst probe latency is reported as a
 * diagnostic, not asserted (no timed assertions).
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import * as path from 'node:path'
import { test } from 'node:test'
import * as openpgp from 'openpgp'
import { MAX_SIGNATURES } from '../../core/verify/check'
import { dearmor } from '../../core/verify/packets'
import type { MilterResponse } from '../../milter/wire/types'
import { MilterClient, runTransaction, splitMessage } from '../helpers/milter-client'
import { freePort, waitForPort } from '../helpers/ports'
import { assembleSigned, textPart } from '../helpers/signers'
import { startWorld } from '../helpers/world'

const ROOT = path.resolve(__dirname, '../../..')

async function startServe(dir: string, httpPort: number, milterPort: number): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist/bin/linksec.js'), 'serve', '--config', dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let err = ''
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`linksec serve exited ${code}: ${err}`))),
  )
  exited.catch(() => undefined)
  await Promise.race([Promise.all([waitForPort(httpPort), waitForPort(milterPort)]), exited])
  return proc
}

/** Asks /healthz every 20 ms until stopped; returns each answer's status and latency. */
function probe(port: number): { stop: () => Promise<{ status: number; ms: number }[]> } {
  const seen: { status: number; ms: number }[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      const t0 = performance.now()
      const res = await fetch(`http://127.0.0.1:${port}/healthz`)
      await res.arrayBuffer()
      seen.push({ status: res.status, ms: performance.now() - t0 })
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return seen
    },
  }
}

function replyText(f: MilterResponse): string {
  return f.type === 'replyCode' ? f.text : f.type
}

test('a signature flood on a 10 MB part: serve keeps answering /healthz, the verdicts hold', async (t) => {
  const { privateKey: key } = await openpgp.generateKey({
    userIDs: [{ email: 'alice@example.org' }],
    format: 'object',
  })
  const world = await startWorld({
    zone: { '_linksec.example.org': { TXT: ['v=LINKSEC1; level=3; sig=optional'] } },
  })
  const [httpPort, milterPort, mapPort] = [await freePort(), await freePort(), await freePort()]
  const dir = world.configIni(
    {
      milter: { listen: `inet:127.0.0.1:${milterPort}` },
      socketmap: { listen: `inet:127.0.0.1:${mapPort}` },
      http: { listen: `127.0.0.1:${httpPort}` },
      main: { authserv_id: 'mx.linksec.test' },
      keys: { methods: 'local' },
      log: { level: 'warn' },
    },
    { 'keys/alice@example.org.pgp': Buffer.from(key.toPublic().write()) },
  )
  const proc = await startServe(dir, httpPort, milterPort)
  try {
    const inner = textPart(`${'0123456789abcdef'.repeat(63)}\n`.repeat(10 * 1024))
    const other = await openpgp.createMessage({ binary: new Uint8Array(Buffer.from('other data')) })
    const one = dearmor((await openpgp.sign({ message: other, signingKeys: key, detached: true })) as string)
    const armor = (n: number) =>
      `-----BEGIN PGP SIGNATURE-----\n\n${Buffer.concat(Array(n).fill(one))
        .toString('base64')
        .replace(/.{1,64}/g, '$&\n')}-----END PGP SIGNATURE-----\n`

    const send = async (copies: number) => {
      const raw = assembleSigned({ from: 'Alice <alice@example.org>' }, inner, armor(copies))
      const client = await MilterClient.connect(milterPort)
      try {
        await client.negotiate()
        const { headers, body } = splitMessage(raw)
        return await runTransaction(client, {
          mail: ['<alice@example.org>'],
          rcpt: [['<bob@example.net>']],
          headers,
          body,
        })
      } finally {
        await client.quit()
      }
    }

    const idle = probe(httpPort)
    await new Promise((r) => setTimeout(r, 300))
    const idleSeen = await idle.stop()

    const p1 = probe(httpPort)
    const flood = await send(5000)
    const floodSeen = await p1.stop()
    // Refused before any check: permerror, tagged and accepted (the domain declares sig=optional).
    assert.equal(flood.step, 'eom')
    assert.notEqual(flood.final.type, 'replyCode', replyText(flood.final))
    const ar = flood.modifications
      .map((m) => ('value' in m ? m.value : ''))
      .find((v) => v.includes('x-openpgp='))
    assert.ok(ar, JSON.stringify(flood.modifications))
    // The field is folded at 78 columns (core/verdict.ts): compare it unfolded.
    assert.match(
      ar.replace(/\r?\n[ \t]/g, ' '),
      /x-openpgp=permerror reason="the signature block holds more than 8 signatures/,
    )

    const p2 = probe(httpPort)
    const capped = await send(MAX_SIGNATURES)
    const cappedSeen = await p2.stop()
    // All 8 checked (the data hashed once for all): a bad signature by the sender's key is a fail.
    assert.match(replyText(capped.final), /^550 5\.7\.1 /)

    for (const seen of [idleSeen, floodSeen, cappedSeen]) {
      assert.ok(seen.length > 0)
      assert.ok(seen.every((s) => s.status === 200))
    }
    const worst = (s: { ms: number }[]) => Math.max(...s.map((x) => x.ms)).toFixed(1)
    t.diagnostic(
      `/healthz worst latency: idle ${worst(idleSeen)} ms (${idleSeen.length} probes), ` +
        `5,000-packet flood ${worst(floodSeen)} ms (${floodSeen.length}), ` +
        `${MAX_SIGNATURES} signatures over 10 MB ${worst(cappedSeen)} ms (${cappedSeen.length})`,
    )
  } finally {
    proc.kill('SIGTERM')
    await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once('exit', r)))
    await world.close()
  }
})
