/**
 * Independent OpenPGP verifiers for what linksec signs: GnuPG (`gpg
 * --verify`, a temporary GNUPGHOME, never a keyserver or WKD), Sequoia (`sq
 * verify --detached`) and RNP (`rnp --verify`, Thunderbird's engine). Each
 * is fed the signed part of a multipart/signed exactly as RFC 3156 §5
 * defines it and the detached signature, and says whether it verifies.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { findSignedForm } from '../../core/verify/extract'
import { decodeTransfer, headerValue, parseContentType, parseEntity, splitMultipart } from '../../core/mime'

export type Verifier = 'gpg' | 'sq' | 'rnp'

export interface Outcome {
  ok: boolean
  /** What the tool said (stderr and stdout), for the assertion message. */
  said: string
}

/** The signed part and the armored signature of a top-level multipart/signed message. */
export function detachedParts(msg: Buffer): { data: Buffer; signature: Buffer } {
  const top = parseEntity(msg)
  const ct = parseContentType(headerValue(top.headers, 'content-type'))
  if (ct.type !== 'multipart/signed') throw new Error(`not multipart/signed but ${ct.type}`)
  const mp = splitMultipart(top.body, ct.params.boundary!)
  const sig = parseEntity(mp.parts[1]!)
  const form = findSignedForm(top)
  if (form.kind !== 'signed') throw new Error(`no signed form: ${form.kind}`)
  return {
    data: mp.parts[0]!,
    signature: decodeTransfer(sig.body, headerValue(sig.headers, 'content-transfer-encoding')),
  }
}

/** Runs one verifier in `dir` with `cert` (binary public key) on the message's signed part. */
export function verifyWith(tool: Verifier, dir: string, cert: Buffer, msg: Buffer): Outcome {
  const { data, signature } = detachedParts(msg)
  const work = fs.mkdtempSync(path.join(dir, `${tool}-`))
  const f = (n: string, b: Buffer) => {
    const p = path.join(work, n)
    fs.writeFileSync(p, b)
    return p
  }
  const [certFile, dataFile, sigFile] = [f('cert.pgp', cert), f('data', data), f('data.asc', signature)]
  const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 })
    return { ok: r.status === 0, said: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` }
  }
  if (tool === 'gpg') {
    const home = path.join(work, 'gnupg')
    fs.mkdirSync(home, { mode: 0o700 })
    const gpg = (args: string[]) =>
      run('gpg', ['--batch', '--no-auto-key-locate', '--no-auto-key-retrieve', ...args], { GNUPGHOME: home })
    const imp = gpg(['--import', certFile])
    if (!imp.ok) return imp
    const r = gpg(['--status-fd', '1', '--verify', sigFile, dataFile])
    spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: home } })
    return {
      ok: r.ok && /\[GNUPG:\] GOODSIG/.test(r.said) && /\[GNUPG:\] VALIDSIG/.test(r.said),
      said: r.said,
    }
  }
  if (tool === 'sq') return run('sq', ['verify', '--signer-cert', certFile, '--detached', sigFile, dataFile])
  const home = path.join(work, 'rnp')
  fs.mkdirSync(home, { mode: 0o700 })
  const r = run('rnp', ['--homedir', home, '--keyfile', certFile, '--verify', sigFile, '--source', dataFile])
  return { ok: r.ok && /Good signature/i.test(r.said), said: r.said }
}
