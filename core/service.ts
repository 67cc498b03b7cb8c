/**
 * A long-running listener started by `linksec serve` or the Haraka plugin
 * (milter, socketmap, HTTP). `linksec serve` keeps a list of them, reports
 * them on /healthz and closes them on SIGTERM.
 */
export interface Service {
  /** Short name for logs and /healthz, e.g. "milter", "socketmap", "http". */
  readonly name: string
  /** Where it listens, as configured but with the real port, e.g. "inet:127.0.0.1:8891" or "127.0.0.1:9464". */
  readonly address: string
  /** Stops accepting, lets work in flight finish for up to graceMs, then closes what is left. */
  close(graceMs?: number): Promise<void>
}
