/**
 * Milter load without an MTA, for the memory benchmark: sessions held open
 * after OPTNEG + CONNECT + HELO (what Postfix holds while a client is slow),
 * and whole transactions from many distinct sender domains through a few
 * long-lived sessions (what fills the lookup caches). Uses the project's
 * test milter client, which sends events the way Postfix does.
 */
import { MilterClient } from '../../test/helpers/milter-client'
import type { MacroPairs } from '../../milter/wire/types'

const CONNECT_MACROS: MacroPairs = [
  ['j', 'mta.example.test'],
  ['{daemon_name}', 'mta.example.test'],
  ['v', 'Postfix 3.7.11'],
  ['_', 'client.example.test [127.0.0.1]'],
]

/** HELO macros of a session after STARTTLS (what Postfix sends, real-peers.md §2). */
const TLS_MACROS: MacroPairs = [
  ['{tls_version}', 'TLSv1.3'],
  ['{cipher}', 'TLS_AES_256_GCM_SHA384'],
  ['{cipher_bits}', '256'],
]

/** A session as far as HELO: negotiated, connected, greeted (under TLS when `tls`). */
export async function openSession(target: string, n: number, tls = false): Promise<MilterClient> {
  const client = await MilterClient.connect(target)
  try {
    await client.negotiate()
    await client.event(
      {
        type: 'connect',
        host: 'client.example.test',
        family: 'inet4',
        port: 40000 + (n % 20000),
        address: '127.0.0.1',
      },
      CONNECT_MACROS,
    )
    const helo = await client.event({ type: 'helo', name: `client${n}.example.test` }, tls ? TLS_MACROS : [])
    // NR_CONN/NR_HELO leave these events unanswered; flush so the milter sees them now.
    if (helo.responses.length === 0) client.flush()
    return client
  } catch (err) {
    client.destroy()
    throw err
  }
}

/** Opens `count` sessions, `parallel` at a time; stops early when `signal` aborts. */
export async function holdSessions(target: string, count: number, parallel: number, signal?: AbortSignal) {
  const clients: MilterClient[] = []
  let next = 0
  const worker = async () => {
    while (next < count && !signal?.aborted) clients.push(await openSession(target, next++))
  }
  try {
    await Promise.all(Array.from({ length: parallel }, worker))
  } catch (err) {
    for (const c of clients) c.destroy()
    throw err
  }
  return clients
}

export interface MessageParts {
  headers: Array<[string, string]>
  body: Buffer
}

/** Splits an LF or CRLF message into header fields (unfolded) and a CRLF body. */
export function messageParts(text: string): MessageParts {
  const lf = text.replace(/\r\n/g, '\n')
  const cut = lf.indexOf('\n\n')
  const headers: Array<[string, string]> = []
  for (const line of lf.slice(0, cut).split('\n')) {
    const last = headers[headers.length - 1]
    if (/^[ \t]/.test(line) && last) last[1] += `\n${line}`
    else headers.push([line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()])
  }
  return { headers, body: Buffer.from(lf.slice(cut + 2).replace(/\n/g, '\r\n')) }
}

/** One message through an open session; resolves to the final reply type (continue, tempfail, …). */
export async function sendTransaction(
  client: MilterClient,
  sender: string,
  rcpt: string,
  parts: MessageParts,
  queueId: string,
) {
  const i: MacroPairs = [['i', queueId]]
  await client.event({ type: 'mail', args: [`<${sender}>`] }, [['{mail_addr}', sender]])
  await client.event({ type: 'rcpt', args: [`<${rcpt}>`] }, [['{rcpt_addr}', rcpt]])
  await client.event({ type: 'data' }, i)
  for (const [name, value] of parts.headers) await client.event({ type: 'header', name, value }, i)
  await client.event({ type: 'eoh' }, i)
  await client.event({ type: 'body', chunk: parts.body }, i)
  const eom = await client.event({ type: 'endOfMessage', chunk: Buffer.alloc(0) }, i)
  // Postfix ends each transaction with ABORT (no reply) before the next MAIL.
  client.queue({ type: 'abort' })
  return eom.responses.at(-1)?.type ?? 'none'
}

export interface TransactionLoad {
  target: string
  total: number
  workers: number
  /** Sender and message for transaction n. */
  message: (n: number) => { sender: string; rcpt: string; parts: MessageParts }
  deadline: number
  signal?: AbortSignal
  onProgress?: (done: number) => void
}

/** Runs up to `total` transactions over `workers` sessions until done, the deadline, or abort. */
export async function runTransactions(
  load: TransactionLoad,
): Promise<{ done: number; replies: Record<string, number> }> {
  const replies: Record<string, number> = {}
  let next = 0
  let done = 0
  const more = () => next < load.total && Date.now() < load.deadline && !load.signal?.aborted
  const worker = async (w: number) => {
    const client = await openSession(load.target, w, true)
    try {
      while (more()) {
        const n = next++
        const m = load.message(n)
        const reply = await sendTransaction(
          client,
          m.sender,
          m.rcpt,
          m.parts,
          `Q${n.toString(16).toUpperCase()}`,
        )
        replies[reply] = (replies[reply] ?? 0) + 1
        if (++done % 500 === 0) load.onProgress?.(done)
      }
    } finally {
      await client.quit().catch(() => client.destroy())
    }
  }
  await Promise.all(Array.from({ length: load.workers }, (_, w) => worker(w)))
  return { done, replies }
}
