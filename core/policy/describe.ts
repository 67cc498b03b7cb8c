/**
 * DomainPolicy for people and scripts: the table `linksec check` prints and
 * its JSON form. Each source's row says what it answered and why.
 */
import type { DomainPolicy, SourceAnswer } from './types'

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString())

export function policyToJson(p: DomainPolicy, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    domain: p.domain,
    level: p.level,
    tlsMode: p.tlsMode,
    mxPatterns: p.mxPatterns,
    signatures: p.signatures,
    decidedBy: p.decidedBy,
    temporaryFailure: p.temporaryFailure,
    tlsModeUncertain: p.tlsModeUncertain,
    ...extra,
    sources: p.sources.map((s) => ({
      source: s.source,
      outcome: s.outcome,
      level: s.level ?? null,
      tlsMode: s.tlsMode ?? null,
      mxPatterns: s.mxPatterns ?? [],
      signatures: s.signatures ?? null,
      expiresAt: iso(s.expiresAt) ?? null,
      reason: s.reason,
    })),
  }
}

const HEAD = ['SOURCE', 'OUTCOME', 'LEVEL', 'TLS', 'UNTIL', 'WHY']

function row(s: SourceAnswer): string[] {
  const until = s.outcome === 'found' || s.outcome === 'stale' ? (iso(s.expiresAt) ?? 'no expiry') : '-'
  return [
    s.source,
    s.outcome,
    s.level === undefined ? '-' : String(s.level),
    s.tlsMode ?? '-',
    until,
    s.reason,
  ]
}

/** Columns padded to their widest cell; the last column (the reason) is left to wrap. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (i === r.length - 1 ? 0 : r[i]!.length))))
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n')
}

export function describePolicy(p: DomainPolicy, postfixReply?: string): string {
  const decided = p.decidedBy === 'none' ? 'no source vouches for this domain' : `decided by ${p.decidedBy}`
  const lines = [
    `domain      ${p.domain}`,
    `level       ${p.level}`,
    `tls         ${p.tlsMode}${p.mxPatterns.length ? ` (mx ${p.mxPatterns.join(', ')})` : ''}  [${decided}]`,
    `signatures  ${p.signatures}`,
  ]
  if (postfixReply !== undefined) lines.push(`postfix     ${postfixReply}`)
  if (p.temporaryFailure)
    lines.push(
      'warning     a source failed and nothing valid is cached: the answer may be too weak; try again later',
    )
  return `${lines.join('\n')}\n\n${formatTable([HEAD, ...p.sources.map(row)])}\n`
}
