import * as os from 'node:os'
import { ConfigError } from '../errors'
import { SCHEMA, type KeySpec, type LinksecConfig } from './schema'

type RawIni = Record<string, unknown>

/** Validates a parsed INI object against SCHEMA; unknown keys are errors (typos are common). */
export function parseConfig(raw: RawIni, dir: string): LinksecConfig {
  const out: Record<string, unknown> = { dir }
  const problems: string[] = []
  for (const [name, value] of Object.entries(raw)) {
    if (name === 'main' && !(name in SCHEMA)) continue
    if (!(name in SCHEMA)) {
      // haraka-config puts top-level keys (before any [section]) into `main`.
      problems.push(`[${name}] is not a linksec section; known sections: ${Object.keys(SCHEMA).join(', ')}`)
      continue
    }
    if (value === null || typeof value !== 'object') problems.push(`[${name}] must be a section`)
  }
  for (const [sec, keys] of Object.entries(SCHEMA)) {
    const given = (raw[sec] ?? {}) as Record<string, unknown>
    const section: Record<string, unknown> = {}
    for (const k of Object.keys(given)) {
      if (!(k in keys))
        problems.push(`[${sec}] ${k} is not a known key; known keys: ${Object.keys(keys).join(', ')}`)
    }
    for (const [key, spec] of Object.entries(keys as Record<string, KeySpec>)) {
      try {
        section[key] = coerce(spec, given[key])
      } catch (e) {
        problems.push(`[${sec}] ${key}: ${(e as Error).message}`)
      }
    }
    out[sec] = Object.freeze(section)
  }
  if (problems.length)
    throw new ConfigError(`invalid configuration in ${dir}/linksec.ini:\n  ${problems.join('\n  ')}`)
  const cfg = out as { main: { authserv_id: string } }
  if (!cfg.main.authserv_id) cfg.main = Object.freeze({ ...cfg.main, authserv_id: os.hostname() })
  return Object.freeze(out) as LinksecConfig
}

function coerce(spec: KeySpec, value: unknown): unknown {
  if (value === undefined || value === null || value === '') {
    return spec.type === 'list' ? Object.freeze([...spec.default]) : spec.default
  }
  // INI values are strings, numbers or booleans (lists may come as arrays); JSON shows anything else as it is.
  const text =
    typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
      ? String(value)
      : JSON.stringify(value)
  switch (spec.type) {
    case 'bool':
      if (typeof value === 'boolean') return value
      if (/^(true|yes|on|1)$/i.test(text)) return true
      if (/^(false|no|off|0)$/i.test(text)) return false
      throw new Error(`"${text}" is not a boolean; write true or false`)
    case 'int': {
      const s = text.trim()
      if (!/^-?\d+$/.test(s))
        throw new Error(`"${text}" is not a whole number; write a number between ${spec.min} and ${spec.max}`)
      const n = Number(s)
      if (n < spec.min || n > spec.max)
        throw new Error(`${n} is out of range; write a number between ${spec.min} and ${spec.max}`)
      return n
    }
    case 'enum': {
      const s = text.trim().toLowerCase()
      if (!spec.values.includes(s))
        throw new Error(`"${text}" is not allowed; write one of: ${spec.values.join(', ')}`)
      return s
    }
    case 'string': {
      const s = text.trim()
      if (spec.pattern && !spec.pattern.test(s))
        throw new Error(`"${text}" is not valid; write ${spec.hint ?? spec.pattern}`)
      const bad = s === '' ? undefined : spec.check?.(s)
      if (bad) throw new Error(`"${text}": ${bad}`)
      return s
    }
    case 'list': {
      const items = (Array.isArray(value) ? value.map(String) : text.split(','))
        .map((s) => s.trim())
        .filter(Boolean)
      for (const item of items) {
        if (spec.pattern && !spec.pattern.test(item))
          throw new Error(`"${item}" is not valid; write ${spec.hint ?? spec.pattern}`)
        const bad = spec.check?.(item)
        if (bad) throw new Error(`"${item}": ${bad}`)
      }
      return Object.freeze(items)
    }
  }
}

/** The configuration with every key at its default (tests, `linksec` without a config dir). */
export function defaultConfig(dir = '.'): LinksecConfig {
  return parseConfig({}, dir)
}
