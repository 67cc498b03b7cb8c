/**
 * Key discovery services per runtime: the local store and the finder built
 * from `[keys]`, `[net]` and `[resolver]` (docs/architecture.md §6.4, §2).
 */
import * as path from 'node:path'
import { configPath } from '../config'
import { dnsClientFor } from '../net/dns'
import { sharedCacheFor } from '../redis'
import { httpsClientFor } from '../net/https'
import { engineService, sectionsKey } from '../engine'
import { createKeyFinder, type KeyFinder } from './finder'
import { KeyStore } from './store'
import { CA_SUBDIR, CaStore } from './ca'
import { KeyContinuity } from './continuity'

export { parseAddress, fromAddress, addressKey, type MailAddress } from './address'
export { wkdHash, wkdUrls, openpgpkeyName, zbase32 } from './names'
export { KeyStore, type StoredKey } from './store'
export { createKeyFinder, type KeyFinder, type KeyLookup, type KeySource } from './finder'
export type { KeyRing, SignerEntry } from './material'
export {
  CaStore,
  DomainCa,
  caAddress,
  checkCertification,
  createCaKey,
  normalizeFingerprint,
  type CertificationCheck,
} from './ca'

/**
 * The domain CAs under `[sign] secret_dir`/ca (core/keys/ca.ts). Every key
 * published for one of our domains goes through `caStoreFor(rt).certify(key)`.
 */
export const caStoreFor = engineService({
  name: 'ca-store',
  key: (c) => sectionsKey(c, []) + c.sign.secret_dir,
  build: (rt) => new CaStore(path.join(configPath(rt.config, rt.config.sign.secret_dir), CA_SUBDIR), rt.now),
})

/** The store under `[keys] dir`, one per runtime. */
export const keyStoreFor = engineService({
  name: 'key-store',
  key: (c) => sectionsKey(c, []) + c.keys.dir,
  build: (rt) => new KeyStore(configPath(rt.config, rt.config.keys.dir), rt.log, rt.now),
})

/** The key finder and its cache (one per engine; rebuilt when [keys], [net] or [resolver] change). */
export const keyFinderFor = engineService<KeyFinder>({
  name: 'key-finder',
  key: (c) => `${sectionsKey(c, ['keys', 'net', 'resolver'])} ${String(Boolean(c.redis.url))}`,
  build: (rt) =>
    createKeyFinder({
      methods: rt.config.keys.methods,
      store: keyStoreFor(rt),
      remote: {
        dns: dnsClientFor(rt),
        // Built on first use: [net] ca_file is only read when a key is fetched.
        get https() {
          return httpsClientFor(rt)
        },
        maxBytes: rt.config.net.max_bytes,
      },
      metrics: rt.metrics,
      now: rt.now,
      cacheMax: rt.config.keys.cache_max,
      positiveTtlMs: rt.config.keys.positive_ttl * 1000,
      negativeTtlMs: rt.config.keys.negative_ttl * 1000,
      // A fleet shares fetched keys and negative answers through Redis (docs/architecture.md §6.6).
      shared: sharedCacheFor(rt),
    }),
})

/** The fingerprints seen per sender address (core/keys/continuity.ts), shared through Redis when configured. */
export const continuityFor = engineService<KeyContinuity>({
  name: 'key-continuity',
  key: (c) => `${c.keys.cache_max} ${Boolean(c.redis.url)}`,
  build: (rt) =>
    new KeyContinuity({ max: rt.config.keys.cache_max, now: rt.now, shared: sharedCacheFor(rt) }),
})
export { KeyContinuity, type SeenKey } from './continuity'
