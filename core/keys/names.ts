/**
 * Where a key for an address lives: WKD URLs (draft-koch-openpgp-webkey-
 * service §3.1) and the OPENPGPKEY owner name (RFC 7929 §3). The two hash the
 * local part differently: WKD lower-cases ASCII letters and uses SHA-1 with
 * z-base-32; OPENPGPKEY uses SHA-256 of the local part as written.
 */
import { createHash } from 'node:crypto'
import type { MailAddress } from './address'

const ZBASE32 = 'ybndrfg8ejkmcpqxot1uwisza345h769'

/** RFC 6189 §5.1.6 z-base-32: 5-bit groups, most significant first, no padding. */
export function zbase32(data: Uint8Array): string {
  let out = ''
  let acc = 0
  let bits = 0
  for (const byte of data) {
    acc = (acc << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += ZBASE32.charAt((acc >> (bits - 5)) & 31)
      bits -= 5
    }
    acc &= (1 << bits) - 1
  }
  if (bits > 0) out += ZBASE32.charAt((acc << (5 - bits)) & 31)
  return out
}

/** The WKD hash of a local part: only ASCII A-Z are lower-cased. */
export function wkdHash(local: string): string {
  const lowered = local.replace(/[A-Z]/g, (c) => c.toLowerCase())
  return zbase32(createHash('sha1').update(lowered, 'utf8').digest())
}

export interface WkdUrls {
  advanced: string
  direct: string
  /** The host whose address decides between advanced and direct. */
  advancedHost: string
}

/** The URLs without a port: the HTTPS client applies `[net] https_port`. */
export function wkdUrls(a: MailAddress): WkdUrls {
  const hash = wkdHash(a.local)
  const l = encodeURIComponent(a.local)
  const advancedHost = `openpgpkey.${a.domain}`
  return {
    advancedHost,
    advanced: `https://${advancedHost}/.well-known/openpgpkey/${a.domain}/hu/${hash}?l=${l}`,
    direct: `https://${a.domain}/.well-known/openpgpkey/hu/${hash}?l=${l}`,
  }
}

/** RFC 7929 §3: hex(SHA2-256(local part))[0:56] `._openpgpkey.` domain. */
export function openpgpkeyName(a: MailAddress): string {
  const local = a.local.normalize('NFC')
  const h = createHash('sha256').update(local, 'utf8').digest('hex').slice(0, 56)
  return `${h}._openpgpkey.${a.domain}`
}
