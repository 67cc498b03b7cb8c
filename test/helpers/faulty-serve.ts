/**
 * A `linksec serve` process whose milter handler misbehaves on purpose, to
 * show the process guard (core/guard.ts) at work: it installs the guard as
 * `serve` does, starts the milter with the handler below and the HTTP
 * service, prints "milter listening on ADDR" / "http listening on ADDR",
 * and runs until SIGTERM. The message's Subject picks the fault:
 *   timer-throw      a throw from a timer; the handler's promise never settles
 *   stray-rejection  a promise nobody awaits rejects; the handler answers continue
 *   sync-throw       the handler throws
 *   nul-recipient    a modification the codec cannot encode (NUL in a recipient)
 * anything else: continue.
 *
 *   node dist/test/helpers/faulty-serve.js
 */
import { parseConfig } from '../../core/config'
import { installProcessGuard } from '../../core/guard'
import { startHttpService } from '../../core/http/server'
import { createLogger } from '../../core/log'
import { createMetrics } from '../../core/metrics'
import { createRuntime } from '../../core/runtime'
import { milterNeeds } from '../../milter/app'
import { startMilterService } from '../../milter/server'
import type { EndOfMessageReply, MilterHandler, SessionFacts } from '../../milter/session'
import { Action } from '../../milter/wire/codes'

function subject(facts: SessionFacts): string {
  return facts.transaction?.headers.find((h) => h.name.toLowerCase() === 'subject')?.value ?? ''
}

async function endOfMessage(facts: SessionFacts): Promise<EndOfMessageReply> {
  const ok: EndOfMessageReply = { modifications: [], final: { type: 'continue' } }
  switch (subject(facts)) {
    case 'timer-throw':
      return new Promise<EndOfMessageReply>(() => {
        setTimeout(() => {
          throw new Error('test fault: thrown from a timer')
        }, 5)
      })
    case 'stray-rejection':
      void Promise.reject(new Error('test fault: a promise nobody awaits'))
      return ok
    case 'sync-throw':
      throw new Error('test fault: thrown by the handler')
    case 'nul-recipient':
      return { modifications: [{ type: 'addRecipient', recipient: '<a\0b@example.net>' }], final: ok.final }
    default:
      return ok
  }
}

async function main(): Promise<void> {
  const config = parseConfig(
    { milter: { listen: 'inet:127.0.0.1:0' }, http: { listen: '127.0.0.1:0' }, log: { level: 'error' } },
    '/tmp',
  )
  const rt = createRuntime(config, { log: createLogger({ level: 'error' }), metrics: createMetrics() })
  installProcessGuard(rt)
  const needs = milterNeeds(false)
  const handler: MilterHandler = {
    needs: { ...needs, actions: needs.actions | Action.addRecipients },
    endOfMessage,
  }
  const milter = await startMilterService(rt, { handler })
  const http = await startHttpService(rt, { wkdHandler: null })
  process.stdout.write(`milter listening on ${milter.address}\nhttp listening on ${http.address}\n`)
  await new Promise((resolve) => process.once('SIGTERM', resolve))
  await Promise.all([milter.close(0), http.close(0)])
}

void main()
