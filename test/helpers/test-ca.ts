/**
 * Throw-away certificate authorities for tests, made with the openssl CLI in
 * a temp dir that is removed when the process exits.
 *
 *   const ca = testCa()                      // one per process, cached
 *   ca.caFile                                // PEM for [net] ca_file
 *   const leaf = await ca.leaf(['mta-sts.example.test'])   // { cert, key, certFile, keyFile }
 *   const other = createCa('untrusted')     // a CA nobody trusts (unknown-CA tests)
 *
 * Keys are P-256 (fast to make); leaves carry the names as DNS SANs,
 * serverAuth, and are valid for 30 days from their making.
 */
import { execFile, execFileSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Leaf {
  names: string[]
  cert: string
  key: string
  certFile: string
  keyFile: string
}

export interface TestCa {
  name: string
  dir: string
  /** The CA certificate (PEM) and its file. */
  cert: string
  caFile: string
  /** A leaf for NAMES (DNS SANs), cached by the sorted name list. */
  leaf(names: string[]): Promise<Leaf>
}

const dirs: string[] = []
process.once('exit', () => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

/** A new CA called NAME (synchronous: it takes a few milliseconds). */
export function createCa(name = 'linksec test CA'): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linksec-ca-'))
  dirs.push(dir)
  const caKey = path.join(dir, 'ca.key')
  const caFile = path.join(dir, 'ca.crt')
  execFileSync('openssl', [
    'req', '-x509', ...EC, '-keyout', caKey, '-out', caFile, '-days', '30', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], { stdio: 'pipe' }) // prettier-ignore
  const leaves = new Map<string, Promise<Leaf>>()
  const leaf = (names: string[]) => {
    const key = [...names].sort().join(',')
    let p = leaves.get(key)
    if (!p) {
      p = issueLeaf(dir, caFile, caKey, names)
      leaves.set(key, p)
    }
    return p
  }
  return { name, dir, cert: fs.readFileSync(caFile, 'utf8'), caFile, leaf }
}

async function issueLeaf(dir: string, caFile: string, caKey: string, names: string[]): Promise<Leaf> {
  if (names.length === 0) throw new Error('a leaf certificate needs at least one name')
  const base = path.join(dir, `leaf-${crypto.randomBytes(6).toString('hex')}`)
  const [keyFile, csr, certFile, ext] = ['.key', '.csr', '.crt', '.ext'].map((s) => base + s) as [
    string,
    string,
    string,
    string,
  ]
  fs.writeFileSync(
    ext,
    [
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
    ].join('\n') + '\n',
  )
  await run('openssl', ['req', ...EC, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${names[0]}`])
  await run('openssl', [
    'x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-days', '30',
    '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`, '-extfile', ext, '-out', certFile,
  ]) // prettier-ignore
  return {
    names,
    cert: fs.readFileSync(certFile, 'utf8'),
    key: fs.readFileSync(keyFile, 'utf8'),
    certFile,
    keyFile,
  }
}

let shared: TestCa | undefined

/** The process-wide test CA (made on first use). */
export function testCa(): TestCa {
  return (shared ??= createCa())
}
