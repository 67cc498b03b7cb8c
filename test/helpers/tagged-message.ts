/**
 * The message both no-downgrade tables send (Haraka outbound and Postfix): a
 * plain text body, or with `fallbackPart` a multipart/mixed whose second part
 * is marked `Link-Security-Fallback: yes` (the "pick up your message" part).
 */
export interface TaggedMessageRow {
  /** Tag headers, e.g. ['Link-Security-Required: 3', 'TLS-Required: No']. */
  headers: readonly string[]
  fallbackPart?: boolean
}

export function taggedMessage(id: string, row: TaggedMessageRow, to: string): string {
  const head = [
    'From: Alice <alice@sender.test>',
    `To: <${to}>`,
    `Subject: ${id}`,
    `Message-ID: <${id}@sender.test>`,
    'Date: Mon, 01 Jan 2024 00:00:00 +0000',
    ...row.headers,
    'MIME-Version: 1.0',
  ]
  if (!row.fallbackPart)
    return [...head, 'Content-Type: text/plain', '', `secret body of ${id}`, ''].join('\r\n')
  return [
    ...head,
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    `secret body of ${id}`,
    '--b1',
    'Content-Type: text/plain',
    'Link-Security-Fallback: yes',
    '',
    `pick up ${id} at https://sender.test/pickup`,
    '--b1--',
    '',
  ].join('\r\n')
}
