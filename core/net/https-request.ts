/**
 * One HTTPS request to one already-chosen address. The host name still goes
 * into SNI and the certificate name check; the `lookup` hook hands Node the
 * address we resolved and vetted, so the system resolver is never asked and
 * a second lookup cannot swap in another address (DNS rebinding).
 *
 * Every failure is a LinksecError named for the phase it happened in:
 * before TCP connect -> LINKSEC_FETCH_CONNECT, during the handshake ->
 * LINKSEC_FETCH_TLS, while reading -> LINKSEC_FETCH_CONNECT or _PROTOCOL.
 */
import * as https from 'node:https'
import type * as http from 'node:http'
import * as net from 'node:net'
import type * as tls from 'node:tls'
import { LinksecError } from '../errors'
import type { FetchResponse } from './types'

export interface Target {
  /** The URL as it will be reported back. */
  url: string
  /** Host name (or IP literal, without brackets), lower-case. */
  host: string
  port: number
  /** Path and query. */
  path: string
}

export interface RequestPlan {
  target: Target
  address: string
  method: 'GET' | 'HEAD' | 'POST'
  body?: Buffer
  headers?: Record<string, string>
  maxBytes: number
  secureContext: tls.SecureContext | undefined
  signal: AbortSignal
  timeoutMs: number
}

type Phase = 'connect' | 'handshake' | 'response'

export function fetchTimeout(target: Target, ms: number): LinksecError {
  return new LinksecError('LINKSEC_FETCH_TIMEOUT', `${target.url} did not finish within ${ms} ms`)
}

function tooLarge(target: Target, max: number, declared?: number): LinksecError {
  const what = declared === undefined ? 'more than' : `${declared} bytes, more than`
  return new LinksecError('LINKSEC_FETCH_TOO_LARGE', `${target.url} sent ${what} the ${max}-byte limit`, {
    temporary: false,
  })
}

function phaseError(phase: Phase, plan: RequestPlan, cause: Error): LinksecError {
  const code = (cause as { code?: string }).code ?? ''
  const where = `${plan.target.host} (${plan.address}:${plan.target.port})`
  if (phase === 'handshake' || /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_|VERIFY/.test(code))
    return new LinksecError('LINKSEC_FETCH_TLS', `TLS with ${where} failed: ${cause.message}`, { cause })
  if (phase === 'response' && code.startsWith('HPE_'))
    return new LinksecError('LINKSEC_FETCH_PROTOCOL', `bad HTTP from ${where}: ${cause.message}`, { cause })
  const doing = phase === 'connect' ? 'cannot connect to' : 'connection lost with'
  return new LinksecError('LINKSEC_FETCH_CONNECT', `${doing} ${where}: ${cause.message}`, { cause })
}

function flatHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v
  return out
}

/** A lookup hook that always answers with ADDRESS (Node asks with or without `all`). */
function pinnedLookup(address: string): net.LookupFunction {
  const family = net.isIP(address)
  return ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (opts?.all) cb(null, [{ address, family }])
    else cb(null, address, family)
  }) as unknown as net.LookupFunction
}

export function requestOnce(plan: RequestPlan): Promise<FetchResponse> {
  const { target } = plan
  return new Promise<FetchResponse>((resolve, reject) => {
    let phase: Phase = 'connect'
    let settled = false
    const finish = (fn: () => void) => {
      if (settled) return
      settled = true
      plan.signal.removeEventListener('abort', onAbort)
      fn()
    }
    const fail = (e: unknown) => {
      const err = e instanceof LinksecError ? e : phaseError(phase, plan, e as Error)
      finish(() => reject(err))
      req.destroy()
    }
    const onAbort = () => fail(fetchTimeout(target, plan.timeoutMs))
    // secureContext reaches tls.connect (Node passes the options through); @types omit it.
    const options: https.RequestOptions & { secureContext?: tls.SecureContext } = {
      host: target.host,
      port: target.port,
      path: target.path,
      method: plan.method,
      servername: net.isIP(target.host) ? undefined : target.host,
      lookup: pinnedLookup(plan.address),
      secureContext: plan.secureContext,
      minVersion: 'TLSv1.2',
      agent: false,
      headers: {
        'user-agent': 'linksec',
        accept: '*/*',
        connection: 'close',
        ...plan.headers,
        ...(plan.body ? { 'content-length': String(plan.body.length) } : {}),
      },
    }
    const req = https.request(options)
    req.on('socket', (sock) => {
      sock.once('connect', () => (phase = 'handshake'))
      sock.once('secureConnect', () => (phase = 'response'))
    })
    req.on('error', fail)
    req.on('response', (res) => readBody(res, plan, (r) => finish(() => resolve(r)), fail))
    if (plan.signal.aborted) return onAbort()
    plan.signal.addEventListener('abort', onAbort)
    req.end(plan.body)
  })
}

/** Collects the body up to maxBytes, failing as soon as it is exceeded (declared or sent). */
function readBody(
  res: http.IncomingMessage,
  plan: RequestPlan,
  ok: (r: FetchResponse) => void,
  fail: (e: unknown) => void,
): void {
  const declared = Number(res.headers['content-length'])
  if (Number.isFinite(declared) && declared > plan.maxBytes)
    return fail(tooLarge(plan.target, plan.maxBytes, declared))
  const chunks: Buffer[] = []
  let total = 0
  res.on('data', (chunk: Buffer) => {
    total += chunk.length
    if (total > plan.maxBytes) return fail(tooLarge(plan.target, plan.maxBytes))
    chunks.push(chunk)
  })
  res.on('error', fail)
  res.on('aborted', () => fail(new Error('response aborted')))
  res.on('end', () =>
    ok({
      status: res.statusCode ?? 0,
      headers: flatHeaders(res.headers),
      body: Buffer.concat(chunks),
      url: plan.target.url,
    }),
  )
}
