export { SCHEMA, HARAKA_CONFIG_OPTIONS, type LinksecConfig, type KeySpec } from './schema'
export { parseConfig, defaultConfig } from './parse'
export { loadConfig, configPath, PACKAGE_CONFIG_DIR } from './load'
