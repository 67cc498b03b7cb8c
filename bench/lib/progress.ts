/**
 * Progress on stderr, so the table on stdout stays clean for pipes. On a TTY
 * one bar is redrawn in place; otherwise a plain line is printed whenever the
 * label changes or another 10 % is done, so CI logs stay short.
 */
import type { Progress } from './types'

export interface ProgressSink {
  isTTY: boolean
  columns?: number
  write(text: string): unknown
}

const BAR_WIDTH = 24

/** "[#####-----]  42% label" for a fraction in [0, 1]. */
export function renderBar(fraction: number, label: string, width = BAR_WIDTH): string {
  const f = clamp(fraction)
  const filled = Math.round(f * width)
  const pct = String(Math.round(f * 100)).padStart(3)
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct}% ${label}`
}

function clamp(fraction: number): number {
  if (!Number.isFinite(fraction)) return 0
  return Math.min(1, Math.max(0, fraction))
}

export class ProgressBar {
  private lastLabel = ''
  private lastTenth = -1
  private drawn = false

  constructor(private readonly sink: ProgressSink = process.stderr) {}

  /** A Progress callback for one benchmark, prefixed with its position ("2/5 postfix-e2e"). */
  forBench(prefix: string): Progress {
    return (fraction, label) => this.update(fraction, `${prefix}: ${label}`)
  }

  update(fraction: number, label: string): void {
    if (this.sink.isTTY) return this.redraw(fraction, label)
    const tenth = Math.floor(clamp(fraction) * 10)
    if (label === this.lastLabel && tenth === this.lastTenth) return
    this.lastLabel = label
    this.lastTenth = tenth
    this.sink.write(`${renderBar(fraction, label)}\n`)
  }

  /** Clears the bar line (TTY) so the next output starts on a clean line. */
  done(): void {
    if (this.sink.isTTY && this.drawn) this.sink.write('\r\x1b[2K')
    this.drawn = false
  }

  private redraw(fraction: number, label: string): void {
    const columns = this.sink.columns ?? 100
    const line = renderBar(fraction, label).slice(0, Math.max(20, columns - 1))
    this.sink.write(`\r\x1b[2K${line}`)
    this.drawn = true
  }
}
