/** How linksec's HTTP paths answer (core/http/routes.ts): JSON or text, never cached. */
import type { ServerResponse } from 'node:http'

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value, null, 2) + '\n')
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v)
  send(res, status, 'text/plain; charset=utf-8', text)
}

export function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status
  res.setHeader('Content-Type', contentType)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.setHeader('Cache-Control', 'no-store')
  // Node leaves the body out of HEAD responses itself.
  res.end(body)
}
