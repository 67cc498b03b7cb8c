/**
 * The optional fleet cache (docs/architecture.md §6.6): a SharedCache on Redis, set by
 * [redis] url. It is a second level behind the in-process LRU, so it is
 * best effort: it connects lazily, fails fast while Redis is away (no
 * offline queue, short command timeout) and never keeps a process alive.
 * With no url, everything works on one machine.
 */
import { createClient } from 'redis'
import type { SharedCache } from './cache'
import { describeError } from './errors'
import type { Logger } from './log'
import { raceDeadline } from './net/deadline'
import { engineService, sectionsKey } from './engine'

export interface RedisSharedCache extends SharedCache {
  close(): Promise<void>
}

export interface RedisCacheOptions {
  url: string
  /** Prepended to every key, e.g. "linksec:". */
  prefix: string
  /** Connect and command timeout, ms. */
  timeoutMs: number
  log: Logger
}

export type RedisClient = ReturnType<typeof createClient>

export interface RedisConnection {
  client: RedisClient
  /** Connects on first use; never waits longer than timeoutMs (the client keeps reconnecting behind). */
  ready: () => Promise<void>
  close: () => Promise<void>
}

/**
 * A Redis client as every linksec use wants it (the fleet cache here, the
 * TLS-report counts in core/tlsrpt/store.ts): lazy, no offline queue, short
 * timeouts, backing-off reconnects, unref'd so it never keeps a process alive.
 * Errors go to onError (the client emits one per failed reconnect).
 */
export function connectRedis(opts: {
  url: string
  timeoutMs: number
  onError?: (e: unknown) => void
}): RedisConnection {
  const client = createClient({
    url: opts.url,
    disableOfflineQueue: true,
    commandOptions: { timeout: opts.timeoutMs },
    socket: {
      connectTimeout: opts.timeoutMs,
      reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 5), 3000),
    },
  })
  client.on('error', opts.onError ?? (() => undefined))
  let connecting: Promise<unknown> | undefined
  return {
    client,
    ready: async () => {
      if (client.isReady) return
      connecting ??= client.connect().then(
        () => client.unref(),
        (e: unknown) => {
          connecting = undefined
          throw e
        },
      )
      await raceDeadline(
        connecting,
        opts.timeoutMs,
        () => new Error(`redis not ready within ${opts.timeoutMs} ms`),
      )
    },
    close: async () => {
      if (client.isOpen) await client.close().catch(() => client.destroy())
    },
  }
}

export function createRedisSharedCache(opts: RedisCacheOptions): RedisSharedCache {
  let healthy = true
  const { client, ready, close } = connectRedis({
    url: opts.url,
    timeoutMs: opts.timeoutMs,
    onError: (e) => {
      // Log once per outage, not once per retry.
      if (healthy)
        opts.log.warn('redis shared cache unavailable; continuing with the local cache', {
          error: describeError(e),
        })
      healthy = false
    },
  })
  client.on('ready', () => {
    if (!healthy) opts.log.info('redis shared cache reachable again')
    healthy = true
  })
  const key = (k: string) => `${opts.prefix}${k}`
  return {
    async get(k) {
      await ready()
      const v = await client.get(key(k))
      return v ?? undefined
    },
    async set(k, value, ttlMs) {
      await ready()
      await client.set(key(k), value, { expiration: { type: 'PX', value: Math.max(1, Math.round(ttlMs)) } })
    },
    close,
  }
}

/** The Redis client of [redis] (one per engine; closed when a reload changes [redis]), or undefined without a url. */
const redisClientFor = engineService<RedisSharedCache | undefined>({
  name: 'redis',
  key: (c) => `${sectionsKey(c, ['redis'])} ${c.resolver.timeout_ms}`,
  build: (rt) =>
    rt.config.redis.url
      ? createRedisSharedCache({
          url: rt.config.redis.url,
          prefix: rt.config.redis.prefix,
          timeoutMs: Math.min(rt.config.resolver.timeout_ms, 1000),
          log: rt.log,
        })
      : undefined,
  close: (c) => c?.close(),
})

/**
 * The fleet level the caches are built with, or undefined when [redis] url
 * is empty. It asks the engine for the Redis client on every call, so the
 * caches holding it (learned declarations, keys) keep their entries when a
 * reload replaces the client.
 */
export const sharedCacheFor = engineService<SharedCache | undefined>({
  name: 'shared-cache',
  key: (c) => String(Boolean(c.redis.url)),
  build: (rt) => {
    if (!rt.config.redis.url) return undefined
    const engine = rt.engine
    const client = () => redisClientFor(engine.runtime)
    return {
      get: async (k) => (await client()?.get(k)) ?? undefined,
      set: async (k, v, ttlMs) => client()?.set(k, v, ttlMs),
    }
  },
})
