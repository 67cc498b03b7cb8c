/**
 * Names for a private Postfix without DNS. Postfix sends a message FILTERed
 * to a transport with an empty next hop (examples/postfix) to the
 * RECIPIENT DOMAIN, bypassing transport_maps and relayhost (qmgr: "content
 * filtering overrides the address resolver"; postconf(5)
 * default_filter_nexthop). So a test that keeps the shipped FILTER lines
 * must let Postfix resolve test domains itself. It does so in a private
 * mount namespace: Postfix (master and every daemon it forks) sees its own
 * /etc/hosts naming each test domain, and an /etc/nsswitch.conf that reads
 * hosts from files only, so no lookup can reach the system resolver (which
 * is off the machine). Nothing outside the namespace changes.
 *
 * Every receiver gets its own loopback address and the same port (Postfix's
 * `known_tcp_ports = smtp=PORT` moves the SMTP port), served by a TCP
 * forwarder to the real receiver's 127.0.0.1 port.
 */
import { spawnSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'

/** True when this process may make a mount namespace and bind-mount a file in it (root, CAP_SYS_ADMIN). */
export function privateHostsSupported(): boolean {
  const r = spawnSync(
    'unshare',
    ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind /etc/hosts /etc/hosts'],
    { encoding: 'utf8', timeout: 10_000 },
  )
  return r.status === 0
}

/** Writes DIR/hosts and DIR/nsswitch.conf (hosts from files only) for the namespace. */
export function writeHostsFiles(
  dir: string,
  hosts: Record<string, string>,
): { hosts: string; nsswitch: string } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
  const lines = ['127.0.0.1 localhost', ...Object.entries(hosts).map(([name, addr]) => `${addr} ${name}`)]
  const hostsFile = path.join(dir, 'hosts')
  fs.writeFileSync(hostsFile, lines.join('\n') + '\n', { mode: 0o644 })
  const original = fs.existsSync('/etc/nsswitch.conf') ? fs.readFileSync('/etc/nsswitch.conf', 'utf8') : ''
  const nss = /^hosts:/m.test(original)
    ? original.replace(/^hosts:.*$/m, 'hosts: files')
    : `${original}\nhosts: files\n`
  const nsswitch = path.join(dir, 'nsswitch.conf')
  fs.writeFileSync(nsswitch, nss, { mode: 0o644 })
  return { hosts: hostsFile, nsswitch }
}

/** `unshare` arguments that run SCRIPT (bash) with the two files bind-mounted over /etc. */
export function namespacedBash(files: { hosts: string; nsswitch: string }, script: string): string[] {
  return [
    '--mount',
    '--propagation',
    'private',
    '--',
    'bash',
    '-c',
    'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && exec bash "$3"',
    'linksec-ns',
    files.hosts,
    files.nsswitch,
    script,
  ]
}

/** A random 127.X.Y.0/24 block, so parallel runs do not share addresses. */
export function loopbackBlock(): (host: number) => string {
  const [x, y] = crypto.randomBytes(2)
  const a = 10 + (x! % 240)
  const b = 10 + (y! % 240)
  return (host) => `127.${a}.${b}.${host}`
}

export interface Forwarder {
  address: string
  port: number
  close(): Promise<void>
}

/** Listens on ADDRESS:PORT and pipes every connection to 127.0.0.1:TARGET (TLS passes through untouched). */
export async function startForwarder(address: string, port: number, target: number): Promise<Forwarder> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target, '127.0.0.1')
    for (const s of [inbound, outbound]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
    }
    inbound.on('error', () => outbound.destroy())
    outbound.on('error', () => inbound.destroy())
    inbound.pipe(outbound).pipe(inbound)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, address, () => resolve())
  })
  return {
    address,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
