/**
 * `[http] listen` values: HOST:PORT, [IPv6]:PORT, or HOST alone (default
 * port). Port 0 asks the system for a free port (tests).
 */
import { ConfigError } from '../errors'

const DEFAULT_HTTP_PORT = 9464

export interface HostPort {
  host: string
  port: number
}

export function parseHostPort(value: string, defaultPort = DEFAULT_HTTP_PORT, key = 'http.listen'): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(value.trim())
  const port = m?.[3] === undefined ? defaultPort : Number(m[3])
  if (!m || port > 65535)
    throw new ConfigError(
      `${key} = "${value}" is not HOST:PORT; write e.g. 127.0.0.1:${defaultPort} or [::1]:${defaultPort}`,
    )
  return { host: m[1] ?? m[2]!, port }
}

/** "127.0.0.1:9464" or "[::1]:9464". */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
