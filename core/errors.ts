/**
 * Errors with a stable code (LINKSEC_*) and a flag saying whether trying again
 * later could help. Adapters map temporary errors to 4xx, never to accept.
 */
export class LinksecError extends Error {
  readonly code: string
  readonly temporary: boolean

  constructor(code: string, message: string, options: { temporary?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.name = 'LinksecError'
    this.code = code
    this.temporary = options.temporary ?? true
  }
}

/** Configuration problems: they stop start-up and name the key and the fix. */
export class ConfigError extends LinksecError {
  constructor(message: string) {
    super('LINKSEC_CONFIG', message, { temporary: false })
    this.name = 'ConfigError'
  }
}

export function isLinksecError(e: unknown): e is LinksecError {
  return e instanceof LinksecError
}

/** A message for logs from anything thrown. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    return (typeof code === 'string' || typeof code === 'number') && code
      ? `${code}: ${e.message}`
      : e.message
  }
  return String(e)
}
