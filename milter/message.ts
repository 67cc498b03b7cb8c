/**
 * The plain facts of one inbound message as the milter saw it, and the shape
 * of a message policy: `(msg, rt) => Promise<MessageDecision>`. Policies are
 * listed in ./policies/index.ts; each declares whether it reads the body, so
 * the milter only asks Postfix for the body when someone needs it.
 */
import type { TlsFacts } from '../core/inbound'
import { messageRequirement, REQUIREMENT_HEADER, TLS_REQUIRED_HEADER, type Requirement } from '../core/levels'
import type { Runtime } from '../core/runtime'
import type { MessageDecision } from '../core/verdict'
import type { Header, Recipient, SessionFacts, Transaction } from './session'

export interface InboundMessage {
  /** Postfix queue id (macro `i`), when known. */
  readonly queueId?: string
  readonly client: { readonly host?: string; readonly address?: string; readonly helo?: string }
  readonly tls: TlsFacts
  /** The envelope sender as the client sent it, e.g. `<alice@example.org>` or `<>`. */
  readonly sender: string
  readonly senderArgs: readonly string[]
  readonly recipients: readonly Recipient[]
  readonly headers: readonly Header[]
  /** The body (CRLF lines), only when a policy declared needsBody; capped. Joined on first read. */
  readonly body?: Buffer
  /** The body as it arrived, in chunks: a reader that copies anyway (rawMessage) avoids a second copy. */
  readonly bodyChunks?: readonly Buffer[]
  readonly bodyBytes: number
  readonly bodyTruncated: boolean
  /** What the message's tags ask of every hop (DESIGN §3). */
  readonly requirement: Requirement
}

export type MessagePolicyFn = (msg: InboundMessage, rt: Runtime) => Promise<MessageDecision>

export interface MessagePolicy {
  /** For logs and the internal-error metric's stage label. */
  readonly name: string
  /** True if the policy reads msg.body (the milter then negotiates body delivery). */
  readonly needsBody: boolean
  readonly run: MessagePolicyFn
}

export function messagePolicy(
  name: string,
  run: MessagePolicyFn,
  opts: { needsBody?: boolean } = {},
): MessagePolicy {
  return { name, run, needsBody: opts.needsBody ?? false }
}

/** All values of a header, by case-insensitive name, in message order. */
export function headerValues(headers: readonly Header[], name: string): string[] {
  const lower = name.toLowerCase()
  return headers.filter((h) => h.name.toLowerCase() === lower).map((h) => h.value)
}

/** RFC 8689: the MAIL parameter REQUIRETLS (valueless; case-insensitive). */
export function hasRequireTlsParam(args: readonly string[]): boolean {
  return args.some((a) => /^requiretls$/i.test(a.trim()))
}

/** TLS facts from Postfix's HELO-stage macros (present after STARTTLS only). */
export function tlsFactsFromMacros(get: (name: string) => string | undefined): TlsFacts {
  const bits = Number(get('{cipher_bits}'))
  const facts: TlsFacts = {
    version: get('{tls_version}') || undefined,
    cipher: get('{cipher}') || undefined,
    cipherBits: Number.isInteger(bits) && bits > 0 ? bits : undefined,
    certSubject: get('{cert_subject}') || undefined,
    certIssuer: get('{cert_issuer}') || undefined,
  }
  return Object.fromEntries(Object.entries(facts).filter(([, v]) => v !== undefined)) as TlsFacts
}

/** Builds the policies' view of the message from the session's state. */
export function inboundMessage(s: SessionFacts, tx: Transaction): InboundMessage {
  const get = (name: string) => s.macros.get(name)
  const conn = s.connection
  const chunks = tx.body
  let joined: Buffer | undefined
  return {
    queueId: get('i'),
    client: {
      host: conn?.host,
      address: conn && conn.family !== 'unknown' ? conn.address : undefined,
      helo: s.helo,
    },
    tls: tlsFactsFromMacros(get),
    sender: tx.sender,
    senderArgs: tx.senderArgs,
    recipients: tx.recipients,
    headers: tx.headers,
    get body() {
      if (chunks.length) joined ??= Buffer.concat(chunks)
      return joined
    },
    bodyChunks: chunks,
    bodyBytes: tx.bodyBytes,
    bodyTruncated: tx.bodyTruncated,
    requirement: messageRequirement({
      requiretlsParam: hasRequireTlsParam(tx.senderArgs),
      requirementHeaders: headerValues(tx.headers, REQUIREMENT_HEADER),
      tlsRequiredHeaders: headerValues(tx.headers, TLS_REQUIRED_HEADER),
    }),
  }
}
