/**
 * A token bucket per client address: `burst` requests at once, refilled at
 * `perMinute`. take() answers 0 when the request may go ahead, else the
 * seconds until a token is back (for Retry-After, RFC 9110 §10.2.3). At most
 * `maxClients` buckets are kept; the least recently used is dropped first
 * (a dropped client starts again with a full bucket).
 */
export interface RateLimiter {
  take(client: string): number
}

export function createRateLimiter(opts: {
  perMinute: number
  burst: number
  now: () => number
  maxClients?: number
}): RateLimiter {
  const max = opts.maxClients ?? 10_000
  const perMs = opts.perMinute / 60_000
  const buckets = new Map<string, { tokens: number; at: number }>()
  return {
    take(client) {
      const now = opts.now()
      const b = buckets.get(client) ?? { tokens: opts.burst, at: now }
      buckets.delete(client)
      b.tokens = Math.min(opts.burst, b.tokens + Math.max(0, now - b.at) * perMs)
      b.at = now
      buckets.set(client, b)
      if (buckets.size > max) buckets.delete(buckets.keys().next().value!)
      if (b.tokens >= 1) {
        b.tokens -= 1
        return 0
      }
      return Math.max(1, Math.ceil((1 - b.tokens) / perMs / 1000))
    },
  }
}
