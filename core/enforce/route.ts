/**
 * Postfix routing for tagged mail (docs/architecture.md §5.1): Postfix
 * 3.7 has no per-message TLS requirement, so the milter marks tagged mail
 * with a header, `milter_header_checks` turns the header into
 * `FILTER linksec-<route>:` and the transports in examples/postfix/master.cf
 * fix the TLS level: `encrypt` (N <= 3) or `secure` (N = 4, REQUIRETLS).
 */
import type { Requirement } from '../levels'
import { isEnforced, requirementLabel, type Enforcement } from './hop'

export type Route = 'encrypt' | 'secure'

/** The transport class a message needs, or undefined when normal routing may carry it. */
export function routeFor(req: Requirement, enforcement: Enforcement): Route | undefined {
  if (!isEnforced(req, enforcement)) return undefined
  return req.verifiedCertificate ? 'secure' : 'encrypt'
}

/** Header value: the route first (what milter_header_checks matches), then the level for people. */
export function formatRouteHeader(route: Route, req: Requirement): string {
  return `${route}; level=${requirementLabel(req)}`
}

/** Reads a route header value back (the milter strips forged ones before adding its own). */
export function parseRouteHeader(value: string): Route | undefined {
  const m = /^\s*(encrypt|secure)\b/i.exec(value)
  return m ? (m[1]!.toLowerCase() as Route) : undefined
}
