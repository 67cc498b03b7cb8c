import * as http from 'node:http'
import { defaultConfig, type LinksecConfig } from '../../../../core/config'
import { createLogger } from '../../../../core/log'
import { createMetrics } from '../../../../core/metrics'
import { createRuntime, type Runtime } from '../../../../core/runtime'

/** A runtime with its own registry and a logger that records lines. */
export function testRuntime(over: { http?: Partial<LinksecConfig['http']> } = {}): {
  rt: Runtime
  lines: string[]
} {
  const base = defaultConfig('/nonexistent')
  const config = { ...base, http: { ...base.http, listen: '127.0.0.1:0', ...over.http } } as LinksecConfig
  const lines: string[] = []
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l) })
  return { rt: createRuntime(config, { log, metrics: createMetrics() }), lines }
}

export interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** One request on a fresh connection (no keep-alive, so tests leave nothing open). */
export function request(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end()
  })
}
