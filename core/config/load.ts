import * as fs from 'node:fs'
import * as path from 'node:path'
import { ConfigError } from '../errors'
import { HARAKA_CONFIG_OPTIONS, type LinksecConfig } from './schema'
import { parseConfig } from './parse'

/** The package's own config/ directory (the shipped defaults). */
export const PACKAGE_CONFIG_DIR = path.resolve(__dirname, '..', '..', '..', 'config')

/** haraka-config is CommonJS without types; this is the part we use. */
interface HarakaConfig {
  get(name: string, opts?: object, cb?: () => void): unknown
}

function harakaConfig(): HarakaConfig {
  return require('haraka-config') as HarakaConfig
}

/** Reads DIR/linksec.ini with haraka-config (absolute path, no HARAKA discovery) and validates it. */
export function loadConfig(
  dir: string = PACKAGE_CONFIG_DIR,
  onReload?: (cfg: LinksecConfig) => void,
): LinksecConfig {
  const abs = path.resolve(dir)
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) {
    throw new ConfigError(
      `configuration directory ${abs} does not exist; pass --config DIR with a directory holding linksec.ini`,
    )
  }
  const file = path.join(abs, 'linksec.ini')
  const read = () => harakaConfig().get(file, HARAKA_CONFIG_OPTIONS, reload) as Record<string, unknown>
  const reload = onReload
    ? () => {
        try {
          onReload(parseConfig(read(), abs))
        } catch {
          // A bad reload keeps the old configuration; the caller logs on its next load.
        }
      }
    : undefined
  if (!fs.existsSync(file)) return parseConfig({}, abs)
  const dupes = duplicateKeys(fs.readFileSync(file, 'utf8'))
  if (dupes.length) throw new ConfigError(`invalid configuration in ${file}:\n  ${dupes.join('\n  ')}`)
  return parseConfig(read(), abs)
}

/**
 * Keys set twice in one section. haraka-config keeps the last silently; an
 * operator who adds a line below an old one rarely means that, so both lines
 * are named and start-up stops. `key[]=` lines (haraka-config's lists) may
 * repeat.
 */
function duplicateKeys(text: string): string[] {
  const seen = new Map<string, number>()
  const out: string[] = []
  let section = 'main'
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return
    const sec = /^\[([^\]]+)\]$/.exec(line)
    if (sec) {
      section = sec[1]!.trim()
      return
    }
    const eq = line.indexOf('=')
    if (eq <= 0) return
    const key = line.slice(0, eq).trim()
    if (key.endsWith('[]')) return
    const id = `[${section}] ${key}`
    const first = seen.get(id)
    if (first === undefined) seen.set(id, i + 1)
    else out.push(`${id} is set twice (lines ${first} and ${i + 1}); keep one of them`)
  })
  return out
}

/** Resolves a path from the config (e.g. keys.dir) against the config directory. */
export function configPath(cfg: LinksecConfig, p: string): string {
  return path.resolve(cfg.dir, p)
}
