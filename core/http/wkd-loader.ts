/**
 * The WKD handler lives in core/http/wkd.ts (the key-server role, DESIGN §4).
 * It is loaded by name so the HTTP listener still serves /metrics and
 * /healthz in a build without it, and so `[http] wkd = false` skips it.
 */
import type { Runtime } from '../runtime'
import type { WkdHandler } from './routes'

type WkdModule = { createWkdHandler?: (rt: Runtime) => WkdHandler }

export function loadWkdHandler(rt: Runtime, moduleId = './wkd'): WkdHandler | undefined {
  if (!rt.config.http.wkd) return undefined
  let mod: WkdModule
  try {
    mod = require(moduleId) as WkdModule
  } catch (e) {
    // Only "this module is absent" means WKD is not built; a broken wkd.ts must still fail loudly.
    const err = e as { code?: string; message?: string }
    if (err.code !== 'MODULE_NOT_FOUND' || !err.message?.includes(`'${moduleId}'`)) throw e
    rt.log.warn('WKD is not built into this linksec; serving /metrics and /healthz only', {
      module: moduleId,
    })
    return undefined
  }
  if (typeof mod.createWkdHandler !== 'function') {
    rt.log.warn('WKD module has no createWkdHandler; WKD is off', { module: moduleId })
    return undefined
  }
  return mod.createWkdHandler(rt)
}
