/**
 * Reads a delivery status notification (RFC 3464 multipart/report) the way
 * a person's mail client would: the human-readable text, and per recipient
 * the Action, Status, Remote-MTA and diagnostic of the message/delivery-status
 * part, plus the returned headers of the original (to match it to its test).
 */
export interface DsnRecipient {
  finalRecipient: string
  action: string
  status: string
  /** Everything after the status code in Haraka's `Status: 5.7.10 (550 text)`, or Diagnostic-Code. */
  detail: string
  remoteMta?: string
}

export interface ParsedDsn {
  /** The text/plain explanation part. */
  humanText: string
  recipients: DsnRecipient[]
  /** The returned headers of the original message (text/rfc822-headers or message/rfc822). */
  originalHeaders: string
}

function splitHead(text: string): [string, string] {
  const m = /\r?\n\r?\n/.exec(text)
  return m ? [text.slice(0, m.index), text.slice(m.index + m[0].length)] : [text, '']
}

function header(head: string, name: string): string | undefined {
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ')
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(unfolded)
  return m?.[1]?.trim()
}

function parts(body: string, boundary: string): string[] {
  const chunks = body.split(new RegExp(`\\r?\\n?--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:--)?`))
  return chunks
    .slice(1)
    .map((c) => c.replace(/^[ \t]*\r?\n/, ''))
    .filter((c) => c.trim() !== '')
}

/** Flattens nested multiparts into leaf parts [headers, body]. */
function leaves(entity: string, depth = 0): [string, string][] {
  const [head, body] = splitHead(entity)
  const ct = header(head, 'Content-Type') ?? 'text/plain'
  const b = /boundary="?([^";\s]+)"?/i.exec(ct)?.[1]
  if (/^multipart\//i.test(ct) && b && depth < 5) return parts(body, b).flatMap((p) => leaves(p, depth + 1))
  return [[head, body]]
}

/** Recipient blocks of a message/delivery-status body: blank-line separated field groups. */
function recipientsOf(status: string): DsnRecipient[] {
  return status
    .split(/\r?\n\r?\n/)
    .filter((g) => /^Final-Recipient:/im.test(g))
    .map((g) => {
      const statusField = header(g, 'Status') ?? ''
      const code = /^\d\.\d{1,3}\.\d{1,3}/.exec(statusField)?.[0] ?? ''
      return {
        finalRecipient: (header(g, 'Final-Recipient') ?? '').replace(/^rfc822;\s*/i, ''),
        action: (header(g, 'Action') ?? '').toLowerCase(),
        status: code,
        detail: statusField.slice(code.length).trim() || (header(g, 'Diagnostic-Code') ?? ''),
        remoteMta: header(g, 'Remote-MTA'),
      }
    })
}

/** Parses a DSN; returns undefined for a message that is not a delivery report. */
export function parseDsn(raw: string): ParsedDsn | undefined {
  const [head] = splitHead(raw)
  if (!/multipart\/report/i.test(header(head, 'Content-Type') ?? '')) return undefined
  const all = leaves(raw)
  const typeOf = (h: string) => (header(h, 'Content-Type') ?? 'text/plain').toLowerCase()
  const statusPart = all.find(([h]) => typeOf(h).startsWith('message/delivery-status'))
  if (!statusPart) return undefined
  return {
    humanText: all.find(([h]) => typeOf(h).startsWith('text/plain'))?.[1] ?? '',
    recipients: recipientsOf(statusPart[1]),
    originalHeaders: all.find(([h]) => /text\/rfc822-headers|message\/rfc822/.test(typeOf(h)))?.[1] ?? '',
  }
}
