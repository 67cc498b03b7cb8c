/**
 * `[sign] senders_file`: which From addresses a login may use besides its
 * own. One login per line, then its addresses; `@example.org` allows every
 * address of that domain; `#` starts a comment.
 *
 *   alice@example.org   sales@example.org  info@example.org
 *   webapp              @example.org
 *
 * A login is its own address; a login without "@" (a plain SASL user name)
 * may use that local part in every domain signed for.
 */
import * as fs from 'node:fs'
import { LinksecError } from '../errors'
import type { MailAddress } from '../keys/address'

export interface Senders {
  /** How `login` may use `from`, or undefined when it may not. */
  allows(login: string, from: MailAddress): 'login' | 'senders_file' | undefined
  /** Every address (not @domain) the file names, logins included, lower-cased. */
  addresses(): string[]
}

export function parseSenders(text: string, file = 'senders_file'): Senders {
  const map = new Map<string, Set<string>>()
  text.split(/\r?\n/).forEach((line, i) => {
    const words = line
      .replace(/#.*/, '')
      .trim()
      .split(/[\s,]+/)
      .filter(Boolean)
    if (words.length === 0) return
    if (words.length < 2)
      throw new LinksecError(
        'LINKSEC_SIGN_SENDERS',
        `${file} line ${i + 1}: write a login, then the addresses it may use`,
        { temporary: false },
      )
    const [login, ...addrs] = words as [string, ...string[]]
    const set = map.get(login.toLowerCase()) ?? new Set<string>()
    for (const a of addrs) {
      if (!/^[^@\s]*@[A-Za-z0-9.-]+$/.test(a))
        throw new LinksecError(
          'LINKSEC_SIGN_SENDERS',
          `${file} line ${i + 1}: "${a}" is not an address or @domain`,
          { temporary: false },
        )
      set.add(a.toLowerCase())
    }
    map.set(login.toLowerCase(), set)
  })
  return {
    addresses: () =>
      [
        ...new Set([...map].flatMap(([login, set]) => [login, ...set]).filter((a) => /^[^@]+@/.test(a))),
      ].sort(),
    allows(login, from) {
      const l = login.toLowerCase()
      const address = from.address.toLowerCase()
      if (l === address || (!l.includes('@') && l === from.local.toLowerCase())) return 'login'
      const set = map.get(l)
      return set && (set.has(address) || set.has(`@${from.domain}`)) ? 'senders_file' : undefined
    },
  }
}

/** Reads the file; an empty path means "a login may use only its own address". */
export function loadSenders(file: string | undefined): Senders {
  if (!file) return parseSenders('')
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    throw new LinksecError(
      'LINKSEC_SIGN_SENDERS',
      `[sign] senders_file ${file} cannot be read: ${(e as Error).message}`,
      { temporary: false },
    )
  }
  return parseSenders(text, file)
}
