/**
 * A network service `linksec serve` runs (milter, socketmap, HTTP). Each
 * module exports a `start…Service(rt, opts?)` that resolves once it listens;
 * `serve` keeps the list and closes them all on SIGTERM.
 */
export interface Service {
  /** Short name for logs, e.g. "milter". */
  readonly name: string
  /** Where it listens, in the form operators write it: "inet:127.0.0.1:8891", "unix:/run/x.sock". */
  readonly address: string
  /**
   * Stops accepting, lets work in flight finish for up to graceMs, then
   * drops what is left. Resolves when everything is closed; safe to call twice.
   */
  close(graceMs?: number): Promise<void>
}

/** A parsed `inet:HOST:PORT` / `inet6:[ADDR]:PORT` / `unix:PATH` endpoint. */
export type Endpoint = { kind: 'inet'; host: string; port: number } | { kind: 'unix'; path: string }

/** Parses the endpoint forms the config schema accepts (Postfix's spelling). */
export function parseEndpoint(spec: string): Endpoint {
  if (spec.startsWith('unix:')) return { kind: 'unix', path: spec.slice(5) }
  const m = /^inet6?:(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(spec)
  if (!m || Number(m[3]) > 65535)
    throw new Error(`bad endpoint "${spec}": write inet:HOST:PORT or unix:/path`)
  return { kind: 'inet', host: m[1] ?? m[2]!, port: Number(m[3]) }
}

/** The endpoint back in operator spelling (port resolved, e.g. after listening on port 0). */
export function formatEndpoint(e: Endpoint): string {
  if (e.kind === 'unix') return `unix:${e.path}`
  return e.host.includes(':') ? `inet:[${e.host}]:${e.port}` : `inet:${e.host}:${e.port}`
}
