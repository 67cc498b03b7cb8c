/**
 * A minimal DKIM signer (RFC 6376, rsa-sha256, relaxed/relaxed) for the one
 * benchmark message, so OpenDKIM in verify mode has a real signature to
 * check. opendkim-testmsg 2.11 was tried first: it signs with rsa-sha1 and
 * printed a corrupted b= tag here, so it is not used.
 */
import * as crypto from 'node:crypto'

/** RFC 6376 §3.4.2: lowercase name, unfold, collapse whitespace, trim. */
export function relaxedHeader(name: string, value: string): string {
  const v = value
    .replace(/\r?\n(?=[ \t])/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim()
  return `${name.toLowerCase().trim()}:${v}`
}

/** RFC 6376 §3.4.4: collapse whitespace, strip it at line ends, drop trailing empty lines, CRLF. */
export function relaxedBody(body: string): string {
  const lines = body
    .replace(/\r\n/g, '\n')
    .split('\n')
    .map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''))
  while (lines.length && lines[lines.length - 1] === '') lines.pop()
  return lines.length ? lines.join('\r\n') + '\r\n' : ''
}

interface Header {
  name: string
  value: string
}

/** Splits "header\n\nbody" (LF or CRLF) into unfolded-aware header fields and the body. */
export function splitMessage(message: string): { headers: Header[]; body: string } {
  const text = message.replace(/\r\n/g, '\n')
  const cut = text.indexOf('\n\n')
  const head = cut < 0 ? text : text.slice(0, cut)
  const body = cut < 0 ? '' : text.slice(cut + 2)
  const headers: Header[] = []
  for (const line of head.split('\n')) {
    const last = headers[headers.length - 1]
    if (/^[ \t]/.test(line) && last) last.value += `\n${line}`
    else {
      const colon = line.indexOf(':')
      headers.push({ name: line.slice(0, colon), value: line.slice(colon + 1) })
    }
  }
  return { headers, body }
}

export interface DkimKey {
  domain: string
  selector: string
  privateKeyPem: string
}

/** Returns the message (LF line ends) with a DKIM-Signature header prepended. */
export function dkimSign(
  message: string,
  key: DkimKey,
  signed = ['from', 'to', 'subject', 'date', 'message-id'],
): string {
  const { headers, body } = splitMessage(message)
  const bh = crypto.createHash('sha256').update(relaxedBody(body)).digest('base64')
  const present = signed.filter((n) => headers.some((h) => h.name.toLowerCase() === n))
  const tags = `v=1; a=rsa-sha256; c=relaxed/relaxed; d=${key.domain}; s=${key.selector}; h=${present.join(':')};\n\tbh=${bh};`
  const input = present.map((n) => {
    const h = [...headers].reverse().find((x) => x.name.toLowerCase() === n) as Header
    return relaxedHeader(h.name, h.value) + '\r\n'
  })
  input.push(relaxedHeader('DKIM-Signature', ` ${tags} b=`))
  const b = crypto.sign('sha256', Buffer.from(input.join('')), key.privateKeyPem).toString('base64')
  return `DKIM-Signature: ${tags}\n\tb=${b}\n${message.replace(/\r\n/g, '\n')}`
}

/** A fresh 2048-bit RSA key and the TXT value to publish ("v=DKIM1; k=rsa; p=..."). */
export function dkimKeyPair(): { privateKeyPem: string; txt: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
  const der = publicKey.export({ type: 'spki', format: 'der' }).toString('base64')
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    txt: `v=DKIM1; k=rsa; p=${der}`,
  }
}
