import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import * as http from 'node:http'
import * as path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { MilterClient, runTransaction, type TransactionResult } from '../../helpers/milter-client'

const SCRIPT = path.resolve(__dirname, '..', '..', 'helpers', 'faulty-serve.js')

let child: ChildProcess
let output = ''
let milter = ''
let httpPort = 0

before(async () => {
  child = spawn(process.execPath, [SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const deadline = Date.now() + 15000
  while (!/http listening on/.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`faulty-serve did not start: ${output}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  milter = /milter listening on (\S+)/.exec(output)![1]!
  httpPort = Number(/http listening on \S+:(\d+)/.exec(output)![1])
})
after(() => {
  child.kill('SIGKILL')
})

async function message(subject: string): Promise<TransactionResult> {
  const c = await MilterClient.connect(milter)
  try {
    await c.negotiate()
    return await runTransaction(c, {
      mail: ['<a@example.org>'],
      rcpt: [['<b@example.net>']],
      headers: [['Subject', subject]],
      body: 'x\r\n',
    })
  } finally {
    c.destroy()
  }
}

function get(p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: httpPort, path: p }, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => (body += d.toString()))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      })
      .on('error', reject)
  })
}

function replyText(r: TransactionResult): string {
  assert.equal(r.final.type, 'replyCode', JSON.stringify(r.final))
  return (r.final as { text: string }).text
}

describe('the process guard of linksec serve (core/guard.ts)', () => {
  it('answers 451 to the session whose handler threw from a timer, and keeps serving', async () => {
    const r = await message('timer-throw')
    assert.equal(r.step, 'eom')
    assert.match(replyText(r), /^451 4\.3\.0 /)
    assert.equal((await message('fine')).final.type, 'continue')
    assert.equal(child.exitCode, null, output)
  })

  it('survives a promise nobody awaits rejecting, and the message it came with still gets its answer', async () => {
    assert.equal((await message('stray-rejection')).final.type, 'continue')
    assert.equal((await message('fine')).final.type, 'continue')
    assert.equal(child.exitCode, null, output)
  })

  it('answers 451 when the handler throws, or when a response cannot be encoded (NUL)', async () => {
    assert.match(replyText(await message('sync-throw')), /^451 4\.3\.0 /)
    const nul = await message('nul-recipient')
    assert.match(replyText(nul), /^451 4\.3\.0 linksec could not write its answer/)
    assert.deepEqual(nul.modifications, [], 'the unencodable modification is not sent')
    assert.equal((await message('fine')).final.type, 'continue')
  })

  it('logs and counts every escaped error, and /healthz and /metrics keep answering', async () => {
    await message('timer-throw')
    await message('stray-rejection')
    const health = await get('/healthz')
    assert.equal(health.status, 200)
    const metrics = (await get('/metrics')).body
    assert.match(
      metrics,
      /linksec_internal_errors_total\{adapter="milter",stage="uncaught_exception"\} [1-9]/,
    )
    assert.match(
      metrics,
      /linksec_internal_errors_total\{adapter="milter",stage="unhandled_rejection"\} [1-9]/,
    )
    assert.match(metrics, /linksec_internal_errors_total\{adapter="milter",stage="encode"\} [1-9]/)
    assert.match(output, /an error escaped its handler; contained.*test fault: thrown from a timer/)
    assert.equal(child.exitCode, null, output)
  })
})
