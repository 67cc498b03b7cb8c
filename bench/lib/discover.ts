/**
 * Which benchmarks `npm run bench` runs: the end-to-end figures in a fixed
 * order, then every component benchmark other engineers add as
 * bench/milter*.ts, bench/socketmap*.ts, bench/verify*.ts or bench/sign*.ts.
 * bench/trace-*.ts are tools for tracing a regression between built trees
 * (run on their own, with --tree), not part of the run.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { BenchRun } from './types'

export const DECLARED = ['postfix-e2e', 'haraka-e2e', 'memory'] as const
export const COMPONENT_PATTERN = /^(milter|socketmap|verify|sign)[\w-]*\.js$/

export interface BenchModule {
  name: string
  file: string
}

/** Declared benchmarks first, then discovered component benchmarks in name order. */
export function listBenchmarks(dir: string, entries: readonly string[] = safeReaddir(dir)): BenchModule[] {
  const present = new Set(entries)
  const declared = DECLARED.map((name) => ({ name, file: path.join(dir, `${name}.js`) }))
  const components = entries
    .filter((e) => COMPONENT_PATTERN.test(e))
    .sort()
    .map((e) => ({ name: e.replace(/\.js$/, ''), file: path.join(dir, e) }))
  return [...declared.filter((m) => present.has(path.basename(m.file))), ...components]
}

/** The declared benchmarks whose compiled file is missing (reported, not fatal). */
export function missingDeclared(dir: string, entries: readonly string[] = safeReaddir(dir)): string[] {
  return DECLARED.filter((name) => !entries.includes(`${name}.js`))
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}

/** Loads a module's `run` export, or explains what the file lacks. */
export function loadRun(mod: BenchModule): BenchRun {
  const exported = require(mod.file) as { run?: unknown }
  if (typeof exported.run !== 'function') {
    throw new Error(`${mod.file} does not export async function run(opts): Promise<BenchResult>`)
  }
  return exported.run as BenchRun
}
