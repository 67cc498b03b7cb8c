/**
 * UTF-8 through the running milter (issue 12, item 7): header values arrive
 * as UTF-8 on the wire, reach core/verify as the same UTF-8 bytes, and our
 * Authentication-Results field goes back naming the sender once encoded.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { after, test } from 'node:test'
import * as openpgp from 'openpgp'
import { parseConfig } from '../../../core/config'
import { keyStoreFor } from '../../../core/keys'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime } from '../../../core/runtime'
import { startMilterService } from '../../../milter/server'
import { MilterClient, runTransaction, splitMessage } from '../../helpers/milter-client'
import { assembleSigned, textPart } from '../../helpers/signers'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-milter-utf8-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))

test('a signed message from 山田@example.org passes through the milter; the header names 山田 once encoded', async () => {
  const address = '山田@example.org'
  const { privateKey: key } = await openpgp.generateKey({ userIDs: [{ email: address }], format: 'object' })
  const rt = createRuntime(
    parseConfig(
      {
        main: { authserv_id: 'mx.linksec.test' },
        keys: { methods: 'local' },
        resolver: { servers: '127.0.0.1:9', timeout_ms: '200' },
        policy: { txt: 'false', mta_sts: 'false', dane: 'false' },
      },
      dir,
    ),
    { log: silentLogger, metrics: createMetrics({ processMetrics: false }) },
  )
  await keyStoreFor(rt).add(Buffer.from(key.toPublic().write()))
  const inner = textPart('こんにちは\n')
  const message = await openpgp.createMessage({ binary: new Uint8Array(inner) })
  const sig = (await openpgp.sign({ message, signingKeys: key, detached: true })) as string
  const raw = assembleSigned({ from: `山田 太郎 <${address}>` }, inner, sig)
  const svc = await startMilterService(rt, { listen: 'inet:127.0.0.1:0' })
  const client = await MilterClient.connect(svc.address)
  try {
    await client.negotiate()
    // Header values go out as UTF-8 strings, as Postfix sends SMTPUTF8 headers.
    const { headers, body } = splitMessage(raw)
    const r = await runTransaction(client, {
      mail: [`<${address}>`],
      rcpt: [['<bob@example.net>']],
      headers,
      body,
    })
    const ar = r.modifications
      .map((m) => ('value' in m ? m.value.replace(/\n(?=[ \t])/g, '') : ''))
      .find((v) => v.includes('x-openpgp='))
    assert.ok(ar, JSON.stringify(r.modifications))
    assert.match(ar, /x-openpgp=pass header\.from="山田@example\.org"/)
  } finally {
    await client.quit()
    await svc.close(0)
  }
})
