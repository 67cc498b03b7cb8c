/**
 * Containment of errors that escape their own promise chain: a throw from a
 * timer callback, a promise nobody awaits. Node's default for either is to
 * end the process, which for `linksec serve` would take the milter, the
 * socketmap and HTTP down for every session because of one. The process
 * guard logs and counts what escapes, and hands it to the owner of the work
 * it came from (the milter session that started it, found through
 * AsyncLocalStorage), which turns it into a 4xx for that session only.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { describeError } from './errors'
import type { Logger } from './log'
import type { Adapter, Metrics } from './metrics'

/** Work that can take the blame for an escaped error (one milter session, one request). */
export interface ContainmentOwner {
  readonly adapter: Adapter
  /** For the log line, e.g. "milter session 12". */
  readonly label: string
  /** Answers 4xx for what is in flight, or closes; must not throw. */
  contain(e: unknown): void
}

const scope = new AsyncLocalStorage<ContainmentOwner>()

/** Runs fn, and everything it starts (timers, promises, callbacks), on behalf of owner. */
export function runContained<T>(owner: ContainmentOwner, fn: () => T): T {
  return scope.run(owner, fn)
}

/** The owner of the code running now, if any. */
function currentOwner(): ContainmentOwner | undefined {
  return scope.getStore()
}

export type EscapeKind = 'uncaught_exception' | 'unhandled_rejection'

/** Logs, counts and contains one escaped error; exported for tests. */
function containEscaped(
  deps: { log: Logger; metrics: Metrics },
  kind: EscapeKind,
  e: unknown,
  owner = currentOwner(),
): void {
  deps.metrics.internalErrors.inc({ adapter: owner?.adapter ?? 'serve', stage: kind })
  deps.log.error('an error escaped its handler; contained, the process keeps serving', {
    kind,
    owner: owner?.label ?? 'none',
    error: describeError(e),
  })
  try {
    owner?.contain(e)
  } catch (e2) {
    deps.log.error('containing an escaped error failed', { owner: owner?.label, error: describeError(e2) })
  }
}

/**
 * Installs process-wide `uncaughtException` and `unhandledRejection`
 * handlers (only `linksec serve` does: a one-shot command should still fail
 * loudly). Returns the function that removes them.
 */
export function installProcessGuard(deps: { log: Logger; metrics: Metrics }): () => void {
  const onException = (e: unknown) => containEscaped(deps, 'uncaught_exception', e)
  const onRejection = (e: unknown) => containEscaped(deps, 'unhandled_rejection', e)
  process.on('uncaughtException', onException)
  process.on('unhandledRejection', onRejection)
  return () => {
    process.off('uncaughtException', onException)
    process.off('unhandledRejection', onRejection)
  }
}
