/**
 * The plain facts of one message at its end of data, as either adapter saw
 * them: the link (TLS), the client and who submitted the message, the
 * envelope, the header block and the message bytes. The milter builds them
 * from Postfix's macros and the headers/body it was sent (milter/message.ts);
 * the Haraka plugin from the connection and transaction (plugins/message.ts).
 * Nothing here is MTA-specific; the pipeline (./pipeline.ts) reads only this.
 */
import type { TlsFacts } from '../inbound'

export interface ClientFacts {
  /** The client's host name as the MTA resolved it. */
  readonly host?: string
  /** IP address, when the client came over IP. */
  readonly address?: string
  readonly helo?: string
}

/** Who handed the message over. */
export interface SubmitterFacts {
  /** SMTP AUTH login (Postfix `{auth_authen}`, Haraka `connection.notes.auth_user`). */
  readonly authUser?: string
  /**
   * The MTA relays this client's mail (Haraka `connection.relaying`); undefined
   * when the MTA does not say (Postfix tells a milter nothing of the kind).
   */
  readonly relaying?: boolean
}

export interface MessageFacts {
  /** The MTA's queue id (Postfix macro `i`, Haraka transaction uuid), when known. */
  readonly queueId?: string
  readonly client: ClientFacts
  readonly submitter: SubmitterFacts
  /** The inbound link. */
  readonly tls: TlsFacts
  /** The envelope sender as the client sent it, e.g. `<alice@example.org>` or `<>`. */
  readonly sender: string
  /** MAIL FROM carried RFC 8689 REQUIRETLS (and the MTA took it). */
  readonly requiretls: boolean
  /** Recipient addresses as sent (`<bob@example.net>` or `bob@example.net`). */
  readonly recipients: readonly string[]
  /** Unfolded values of a header field (case-insensitive name), in message order. */
  headerValues(name: string): readonly string[]
  /**
   * The whole message as received: header block, blank line, body (CRLF).
   * Called at most once per message, and only by a step that declared
   * needsBody; each adapter builds it with a single copy of the body.
   */
  message(): Promise<Buffer>
  /** The adapter cut the body at [verify] max_message_bytes. */
  readonly bodyTruncated: boolean
}
