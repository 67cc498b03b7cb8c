/**
 * bench/results.json: every benchmark of one run side by side, with the
 * machine it ran on. A single benchmark run on its own (node
 * dist/bench/<name>.js) replaces only its own entry, stamped with its own
 * time, so the file always says when each figure was taken.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { MachineFacts } from './machine'
import type { BenchResult } from './types'

export interface RecordedResult extends BenchResult {
  ranAt: string
  quick: boolean
  seconds: number
  error?: string
  /** One Ed25519 verification in µs, just before and just after the benchmark (bench/lib/host-check.ts). */
  hostEd25519Micros?: [number, number]
}

export interface ResultsFile {
  machine: MachineFacts
  benchmarks: Record<string, RecordedResult>
}

/** bench/results.json in the source tree (dist/bench/lib -> bench/). */
export function defaultResultsPath(): string {
  return path.resolve(__dirname, '..', '..', '..', 'bench', 'results.json')
}

export function readResults(file: string): ResultsFile | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as ResultsFile
    return parsed && typeof parsed.benchmarks === 'object' ? parsed : undefined
  } catch {
    return undefined
  }
}

/** Merges `results` into the file (replacing entries of the same name) and writes it atomically. */
export function writeResults(file: string, machine: MachineFacts, results: RecordedResult[]): ResultsFile {
  const merged: ResultsFile = { machine, benchmarks: { ...(readResults(file)?.benchmarks ?? {}) } }
  for (const r of results) merged.benchmarks[r.name] = r
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(merged, jsonNumbers, 2) + '\n')
  fs.renameSync(tmp, file)
  return merged
}

/** NaN and Infinity are not JSON: write them as null rather than lose the key. */
function jsonNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value
}
