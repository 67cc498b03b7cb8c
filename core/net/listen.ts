/**
 * The one listener helper of `linksec serve`: the milter, the socketmap and
 * the HTTP service all listen through listenOn(). It
 * - listens on inet, inet6 (an IP literal: listening never resolves a name,
 *   the system resolver is not ours to use) or a unix socket;
 * - never takes over a unix socket another process listens on: it connects
 *   to it first, and refuses to start, naming the path, if someone answers
 *   (unlinking it would silently steal the first instance's socket);
 * - removes a stale socket file (a crashed run leaves one; listen() would
 *   fail with EADDRINUSE), and refuses a path that holds anything else;
 * - turns a failure into one sentence naming the service, the address and
 *   the key to change.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import { ConfigError, LinksecError } from '../errors'
import { formatEndpoint, type Endpoint } from '../service'

export interface ListenOptions {
  /** For messages, e.g. "milter". */
  service: string
  /** The config key an operator changes, e.g. "[milter] listen". */
  key: string
  /** File mode of a unix socket (Postfix's user must be able to connect: 0o666, guarded by the directory). */
  socketMode?: number
}

/** Why a service could not listen (not a configuration mistake: something else holds the address). */
export class ListenError extends LinksecError {
  constructor(message: string) {
    super('LINKSEC_LISTEN', message)
    this.name = 'ListenError'
  }
}

/** Listens on the endpoint; resolves with the address in operator spelling (port 0 resolved). */
export async function listenOn(server: net.Server, e: Endpoint, o: ListenOptions): Promise<string> {
  if (e.kind === 'inet' && net.isIP(e.host) === 0)
    throw new ConfigError(
      `${o.key} = "${formatEndpoint(e)}" names a host; write an IP address such as 127.0.0.1 or [::1] (listening never resolves names)`,
    )
  if (e.kind === 'unix') await clearUnixPath(e.path, o)
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new ListenError(`${cannot(o, formatEndpoint(e))}: ${err.code ?? err.message}; ${fix(o)}`))
    }
    server.once('error', onError)
    const done = () => {
      server.off('error', onError)
      resolve()
    }
    if (e.kind === 'unix') server.listen(e.path, done)
    else server.listen({ host: e.host, port: e.port }, done)
  })
  if (e.kind === 'unix') {
    if (o.socketMode !== undefined) fs.chmodSync(e.path, o.socketMode)
    return formatEndpoint(e)
  }
  const a = server.address() as net.AddressInfo
  return formatEndpoint({ kind: 'inet', host: e.host, port: a.port })
}

function cannot(o: ListenOptions, address: string): string {
  return `${o.service} cannot listen on ${address}`
}

function fix(o: ListenOptions): string {
  return `set ${o.key} to a free address (or stop the process that holds it)`
}

/** Removes a stale socket file; refuses a live socket or a file that is not a socket. */
async function clearUnixPath(path: string, o: ListenOptions): Promise<void> {
  let stat: fs.Stats
  try {
    stat = fs.lstatSync(path)
  } catch {
    return // nothing there
  }
  const where = `unix:${path}`
  if (!stat.isSocket())
    throw new ListenError(`${cannot(o, where)}: a file that is not a socket is there; ${fix(o)}`)
  if (await someoneListens(path))
    throw new ListenError(`${cannot(o, where)}: another process is listening on ${path}; ${fix(o)}`)
  fs.unlinkSync(path)
}

/** Connects to a unix socket: true if a listener accepts (ECONNREFUSED means the file is stale). */
function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path)
    const done = (live: boolean) => {
      probe.destroy()
      resolve(live)
    }
    probe.once('connect', () => done(true))
    // Anything but "refused" (EACCES, a full backlog) may be a live listener: never unlink it.
    probe.once('error', (err: NodeJS.ErrnoException) => done(err.code !== 'ECONNREFUSED'))
    probe.setTimeout(2000, () => done(true))
  })
}
