/**
 * Fuzzes the milter codec and session: any bytes from a peer must become
 * commands, answers, or a MilterProtocolError that closes the connection;
 * nothing else may escape. Seeds are a recorded Postfix 3.7 conversation.
 */
import { PACKAGE_CONFIG_DIR, parseConfig } from '../../../core/config'
import { silentLogger } from '../../../core/log'
import { createMetrics } from '../../../core/metrics'
import { createRuntime } from '../../../core/runtime'
import { createMilterApp } from '../../../milter/app'
import { MilterSession } from '../../../milter/session'
import { Cmd } from '../../../milter/wire/codes'
import { CommandDecoder, ResponseDecoder } from '../../../milter/wire/decode'
import { encodeCommand, encodeResponse } from '../../../milter/wire/encode'
import { isMilterProtocolError } from '../../../milter/wire/errors'
import type { MilterCommand } from '../../../milter/wire/types'
import type { FuzzTarget } from '../run'

/**
 * `npm run fuzz` runs without the test runner's resolver guard, and the
 * seed is a tagged message over TLS, which the route policy would look up:
 * DNS goes to a loopback port where nothing answers, the policy engine's
 * network sources are off and keys come from the local store only, so no
 * input can make the fuzzer ask anything off the machine.
 */
const OFFLINE = {
  resolver: { servers: '127.0.0.1:9', timeout_ms: '200' },
  policy: { txt: 'false', mta_sts: 'false', dane: 'false' },
  keys: { methods: 'local' },
}
const rt = createRuntime(parseConfig(OFFLINE, PACKAGE_CONFIG_DIR), {
  log: silentLogger,
  metrics: createMetrics({ processMetrics: false }),
})
const app = createMilterApp(rt)

/** What Postfix 3.7 sent for one message with STARTTLS (seen with milter-tap.py). */
const POSTFIX_CONVERSATION: MilterCommand[] = [
  { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff },
  {
    type: 'macro',
    command: Cmd.connect,
    macros: [
      ['j', 'mta.example.test'],
      ['_', 'localhost [127.0.0.1]'],
    ],
  },
  { type: 'connect', host: 'localhost', family: 'inet4', port: 43144, address: '127.0.0.1' },
  { type: 'macro', command: Cmd.helo, macros: [] },
  { type: 'helo', name: 'client.example.test' },
  { type: 'abort' },
  {
    type: 'macro',
    command: Cmd.helo,
    macros: [
      ['{tls_version}', 'TLSv1.3'],
      ['{cipher}', 'TLS_AES_256_GCM_SHA384'],
    ],
  },
  { type: 'helo', name: 'client.example.test' },
  { type: 'macro', command: Cmd.mail, macros: [['{mail_addr}', 'a@example.org']] },
  { type: 'mail', args: ['<a@example.org>', 'BODY=8BITMIME'] },
  { type: 'rcpt', args: ['<b@example.net>'] },
  { type: 'macro', command: Cmd.data, macros: [['i', '4ABC']] },
  { type: 'header', name: 'Link-Security-Required', value: '3' },
  { type: 'header', name: 'Authentication-Results', value: 'mta.example.test; x-tls=pass' },
  { type: 'eoh' },
  { type: 'body', chunk: Buffer.from('Hello\r\n') },
  { type: 'endOfMessage', chunk: Buffer.alloc(0) },
  { type: 'abort' },
  { type: 'quit' },
]

export const target: FuzzTarget = {
  name: 'milter-codec',
  seeds: () => [
    Buffer.concat(POSTFIX_CONVERSATION.map(encodeCommand)),
    Buffer.concat(POSTFIX_CONVERSATION.slice(0, 5).map(encodeCommand)),
    Buffer.concat([
      encodeResponse({ type: 'optneg', version: 6, actions: 0x11, protocol: 0xff0b0, symbolLists: [] }),
      encodeResponse({
        type: 'insertHeader',
        index: 0,
        name: 'Authentication-Results',
        value: 'mx; x-tls=none',
      }),
      encodeResponse({ type: 'replyCode', text: '550 5.7.10 no' }),
    ]),
  ],
  async fuzzOne(input) {
    try {
      new ResponseDecoder(1 << 16).push(input)
    } catch (e) {
      if (!isMilterProtocolError(e)) throw e
    }
    const session = new MilterSession(app, { id: 1, log: silentLogger })
    for (const cmd of new CommandDecoder(1 << 16).push(input)) await session.handle(cmd)
  },
  isExpectedError: isMilterProtocolError,
}
