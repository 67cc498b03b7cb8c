/**
 * The catch-all every linksec hook runs in. Haraka itself logs a hook that
 * throws and then *continues* as if the plugin had said CONT (plugins.js
 * run_next_hook), and a rejected promise escapes to the process
 * (haraka.js exits on unhandledRejection). Either would let a message through
 * unchecked or take the server down. guarded() turns both into
 * `next(DENYSOFT, 451 4.3.0 …)`: the client keeps the message and tries again.
 */
import { describeError } from '../core/errors'
import type { Runtime } from '../core/runtime'
import { internalError } from '../core/verdict'
import type { HookHandler } from './duty'
import { DENYSOFT, type HarakaPlugin, type HookMethod, type Next } from './haraka'
import { dsnFor } from './reply'

/** Haraka complains (and ignores) a second next(); we make sure there is only one. */
class OnceNext {
  called = false
  readonly next: Next = (code, msg) => {
    if (this.called) return
    this.called = true
    this.inner(code, msg)
  }

  constructor(private readonly inner: Next) {}
}

function countInternalError(rt: Runtime | undefined, stage: string): void {
  try {
    rt?.metrics.internalErrors.inc({ adapter: 'haraka', stage })
  } catch {
    // Counting must never change the answer.
  }
}

/** Logs, counts and answers 451 4.3.0 unless a reply was already given. */
function failClosed(
  plugin: HarakaPlugin,
  rt: Runtime | undefined,
  stage: string,
  n: OnceNext,
  e: unknown,
): void {
  countInternalError(rt, stage)
  const already = n.called ? ' (after replying; reply unchanged)' : ''
  const line = `linksec internal error at ${stage}${already}: ${describeError(e)}`
  // Errors from Haraka's vm-sandboxed plugins are not `instanceof Error` here.
  const stack = (e as { stack?: unknown } | null)?.stack
  if (rt) rt.log.error(line, { stage, stack: typeof stack === 'string' ? stack : undefined })
  else plugin.logerror(line)
  n.next(DENYSOFT, dsnFor(internalError(`internal_error_${stage}`)))
}

/**
 * Wraps a duty's handler as a Haraka hook method that can never fail open.
 * It runs on every SMTP command of every session, so the happy path
 * allocates only the once-wrapper and the context; the failure handler of a
 * promise is made only when the handler returned one.
 */
export function guarded(stage: string, handler: HookHandler, runtime: () => Runtime): HookMethod {
  return function (this: HarakaPlugin, next: Next, target: unknown, params?: unknown): void {
    const n = new OnceNext(next)
    let rt: Runtime | undefined
    try {
      rt = runtime()
      const result = handler({ plugin: this, rt }, n.next, target, params)
      if (result && typeof result.then === 'function') {
        const settled = rt
        result.then(undefined, (e: unknown) => failClosed(this, settled, stage, n, e))
      }
    } catch (e) {
      failClosed(this, rt, stage, n, e)
    }
  }
}
