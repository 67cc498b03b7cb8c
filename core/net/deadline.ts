/**
 * A signal that aborts after `ms` or when a parent aborts, and that can be
 * released as soon as the work is done. AbortSignal.timeout()/any() keep their
 * timer (and what it references) alive for the whole timeout after an answer
 * came back; under load that promoted ~7 KB per DNS query to V8's old
 * generation. Always call dispose() in a finally.
 */
export interface Deadline {
  signal: AbortSignal
  dispose(): void
}

export function deadline(ms: number, ...parents: Array<AbortSignal | undefined>): Deadline {
  const ctl = new AbortController()
  const timer = setTimeout(() => ctl.abort(new DOMException('deadline exceeded', 'TimeoutError')), ms)
  timer.unref?.()
  const live = parents.filter((p): p is AbortSignal => p !== undefined)
  const onAbort = (ev: Event) => ctl.abort((ev.target as AbortSignal).reason)
  for (const p of live) {
    if (p.aborted) ctl.abort(p.reason)
    else p.addEventListener('abort', onAbort, { once: true })
  }
  return {
    signal: ctl.signal,
    dispose() {
      clearTimeout(timer)
      for (const p of live) p.removeEventListener('abort', onAbort)
    },
  }
}

/**
 * `work`, or the error `late()` makes once `ms` have passed, whichever comes
 * first; the timer is cleared either way. It keeps the process alive while
 * the work is pending: a hanging lookup must end in its error, not in an
 * event loop that ran dry.
 * The one timeout race of the tree (the MTA-facing deadlines, Redis readiness,
 * a service's shutdown grace).
 */
export async function raceDeadline<T>(work: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), Math.max(0, ms))
  })
  try {
    return await Promise.race([work, expired])
  } finally {
    clearTimeout(timer)
  }
}
