/**
 * The WKD handler of the HTTP listeners (the key-server role, docs/architecture.md §6.4),
 * unless `[http] wkd = false`.
 */
import type { Runtime } from '../runtime'
import type { WkdHandler } from './routes'
import { createWkdHandler } from './wkd'

export function loadWkdHandler(rt: Runtime): WkdHandler | undefined {
  return rt.config.http.wkd ? createWkdHandler(rt) : undefined
}
