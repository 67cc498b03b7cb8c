/** Facts about the machine a run happened on, recorded with every result. */
import * as os from 'node:os'
import { spawnSync } from 'node:child_process'

export interface MachineFacts {
  cpuModel: string
  cores: number
  memoryMB: number
  os: string
  node: string
  postfix?: string
  opendkim?: string
  date: string
}

function firstLine(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
  })
  if (r.error || r.status !== 0) return undefined
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '')
}

function osName(): string {
  const rel = spawnSync('sh', ['-c', '. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"'], {
    encoding: 'utf8',
  })
  const pretty = rel.stdout?.trim()
  return `${pretty || os.type()} (kernel ${os.release()})`
}

export function machineFacts(now = new Date()): MachineFacts {
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryMB: Math.round(os.totalmem() / 2 ** 20),
    os: osName(),
    node: process.version,
    postfix: firstLine('postconf', ['-d', '-h', 'mail_version']),
    opendkim: firstLine('opendkim', ['-V'])?.trim(),
    date: now.toISOString(),
  }
}
