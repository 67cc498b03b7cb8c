/**
 * The world of test/integration/enforce-postfix.test.ts: a private Postfix
 * set up with the SHIPPED examples/postfix files (only ports and paths
 * changed), `linksec serve` as its milter and TLS-policy socketmap, the four
 * Haraka receivers of receivers.ts, and a loopback DNS saying what each
 * receiver domain declares:
 *
 *   plain.test   plaintext only                 declares nothing
 *   tls.test     STARTTLS, self-signed          declares nothing
 *   level4.test  STARTTLS, test-CA certificate  TXT level=4 (Postfix cannot read EHLO LINKSEC)
 *   sender.test  the senders' domain: bounces land here
 *   weak.test    served by the plaintext receiver; static list level 1
 *   low.test     TXT level=2 (no server: only the end-of-message check meets it)
 *
 * Postfix finds each domain's server by name in a private /etc/hosts
 * (postfix-hosts.ts), as it must: FILTER with an empty next hop delivers to
 * the recipient domain and ignores transport_maps and relayhost.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { installPostfixExample } from '../integration/examples-helpers'
import { freePort } from './ports'
import { startLinksecServe, startPostfix, type PostfixInstance, type ServeInstance } from './postfix'
import { loopbackBlock, startForwarder, type Forwarder } from './postfix-hosts'
import { startReceivers, stopReceivers, type Receiver, type ReceiverKind } from './receivers'
import { testCa } from './test-ca'
import { startWorld, type WorldOptions, type World } from './world'

/** Not the receivers' own id (mx.linksec.test): theirs would strip ours as forged. */
export const AUTHSERV = 'mta.example.test'

const ZONE = {
  '_linksec.level4.test': { TXT: ['v=LINKSEC1; level=4; ttl=86400; sig=optional'] },
  '_linksec.low.test': { TXT: ['v=LINKSEC1; level=2; ttl=86400; sig=optional'] },
}

const STATIC_LIST = JSON.stringify({ policies: { 'weak.test': { mode: 'testing', level: 1 } } })

/**
 * The queue knobs of the test: a message no strict transport can deliver is
 * retried every second and returned to its sender after 10 s instead of
 * Postfix's 5 days. Not part of the shipped example (README: left to you).
 */
export const QUICK_QUEUE = [
  'maximal_queue_lifetime = 10s',
  'bounce_queue_lifetime = 10s',
  'queue_run_delay = 1s',
  'minimal_backoff_time = 1s',
  'maximal_backoff_time = 2s',
]

export interface EnforcePostfix {
  pf: PostfixInstance
  serve: ServeInstance
  world: World
  receivers: Record<ReceiverKind, Receiver>
  /** Every linksec `decision` log line so far, parsed. */
  decisions(): Array<Record<string, unknown>>
  stop(): Promise<void>
}

const portOf = (address: string) => Number(address.split(':').pop())

async function forwardAll(
  receivers: Record<ReceiverKind, Receiver>,
  cleanup: Array<() => unknown>,
): Promise<{ port: number; ip: Record<ReceiverKind, string> }> {
  const at = loopbackBlock()
  const kinds: ReceiverKind[] = ['plain', 'tls', 'level4', 'dsn']
  const port = await freePort()
  const ip = {} as Record<ReceiverKind, string>
  for (const [i, kind] of kinds.entries()) {
    ip[kind] = at(i + 1)
    const f: Forwarder = await startForwarder(ip[kind], port, receivers[kind].haraka.port)
    cleanup.push(() => f.close())
  }
  return { port, ip }
}

/** Installs the shipped example into the running instance, then the test's own settings, and reloads. */
async function configure(pf: PostfixInstance, serve: ServeInstance, smtpPort: number): Promise<void> {
  installPostfixExample(pf.conf, {
    milter: portOf(serve.milterAddress),
    socketmap: portOf(serve.socketmapAddress),
  })
  // Path substitution: the test CA instead of Debian's bundle (copied where user postfix can read it).
  const caFile = path.join(pf.conf, 'test-ca.crt')
  fs.copyFileSync(testCa().caFile, caFile)
  fs.chmodSync(caFile, 0o644)
  pf.postconf([
    `smtp_tls_CAfile = ${caFile}`,
    // postfix-up.sh relays everything to its sink; this Postfix finds each domain's server itself.
    'relayhost =',
    `known_tcp_ports = smtp=${smtpPort}`,
    ...QUICK_QUEUE,
  ])
  quickQmgrWakeup(pf.conf)
  await pf.reload()
}

/**
 * A queue file the queue manager finds still locked by the delivery agent
 * that just deferred it ("skipped, still being delivered") goes back to the
 * incoming queue, which qmgr rescans on its master.cf wake-up: 300 s in
 * postfix-up.sh. One second here, like queue_run_delay, so such a message
 * is not left waiting past the test's deadline.
 */
function quickQmgrWakeup(conf: string): void {
  const r = spawnSync('postconf', ['-c', conf, '-M', 'qmgr/unix=qmgr unix n - n 1 1 qmgr'], {
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    encoding: 'utf8',
    timeout: 30_000,
  })
  if (r.status !== 0) throw new Error(`postconf -M qmgr failed: ${r.stderr}`)
}

/** `postqueue -p` of the instance: where a message that never arrived still is. */
export function queueListing(pf: PostfixInstance): string {
  const r = spawnSync('postqueue', ['-c', pf.conf, '-p'], {
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    encoding: 'utf8',
    timeout: 30_000,
  })
  return `${r.stdout}${r.stderr}`
}

export interface EnforcePostfixOptions {
  /** More DNS records, names served by the world's HTTPS server, and its routes (world.ts). */
  world?: WorldOptions
  /** More linksec.ini keys for `linksec serve`, given the Postfix instance (e.g. its log file). */
  serveIni?: (pf: PostfixInstance) => Record<string, Record<string, string | number | boolean>>
}

export async function startEnforcePostfix(opts: EnforcePostfixOptions = {}): Promise<EnforcePostfix> {
  const cleanup: Array<() => unknown> = []
  const stop = async () => {
    for (const f of cleanup.splice(0).reverse()) await Promise.resolve(f()).catch(() => undefined)
  }
  try {
    const receivers = await startReceivers()
    cleanup.push(() => stopReceivers(receivers))
    const world = await startWorld({ ...opts.world, zone: { ...ZONE, ...opts.world?.zone } })
    cleanup.push(() => world.close())
    const { port, ip } = await forwardAll(receivers, cleanup)
    const hosts = {
      'plain.test': ip.plain,
      'tls.test': ip.tls,
      'level4.test': ip.level4,
      'sender.test': ip.dsn,
      'weak.test': ip.plain,
      'low.test': ip.plain,
    }
    // Postfix first: serve may read its log ([tlsrpt] postfix_log).
    const pf = await startPostfix({ hosts })
    cleanup.push(() => pf.stop())
    const ini: Record<string, Record<string, string | number | boolean>> = {
      main: { authserv_id: AUTHSERV },
      log: { level: 'info' },
      resolver: { servers: world.dns.address, timeout_ms: 2000 },
      net: { ca_file: world.ca.caFile, https_port: world.https.port, allow_private_addresses: true },
    }
    for (const [section, keys] of Object.entries(opts.serveIni?.(pf) ?? {}))
      ini[section] = { ...ini[section], ...keys }
    const serve = await startLinksecServe({
      ini,
      files: { 'linksec.domains.json': STATIC_LIST },
    })
    cleanup.push(() => serve.stop())
    await configure(pf, serve, port)
    return { pf, serve, world, receivers, decisions: () => decisionLines(serve.output()), stop }
  } catch (e) {
    await stop()
    throw e
  }
}

function decisionLines(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"decision"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'decision')
}
