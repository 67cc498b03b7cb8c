/**
 * Milter protocol v6 wire constants, as Sendmail's libmilter (`mfdef.h`)
 * defines them and Postfix 3.7 (`src/milter/milter8.c`) speaks them. Each
 * readable name carries the libmilter name in a comment.
 */

/** The protocol version we speak; Postfix 3.7 offers 6. */
export const MILTER_VERSION = 6

/** Bytes of the length prefix; the length counts the command byte and the data. */
export const LENGTH_BYTES = 4

/** Largest body chunk an MTA sends (MILTER_CHUNK_SIZE). */
export const MILTER_CHUNK_SIZE = 65535

/** Commands from the MTA to the milter (SMFIC_*). */
export const Cmd = {
  optneg: 0x4f, // 'O' SMFIC_OPTNEG
  macro: 0x44, // 'D' SMFIC_MACRO
  connect: 0x43, // 'C' SMFIC_CONNECT
  helo: 0x48, // 'H' SMFIC_HELO
  mail: 0x4d, // 'M' SMFIC_MAIL
  rcpt: 0x52, // 'R' SMFIC_RCPT
  data: 0x54, // 'T' SMFIC_DATA
  header: 0x4c, // 'L' SMFIC_HEADER
  eoh: 0x4e, // 'N' SMFIC_EOH
  body: 0x42, // 'B' SMFIC_BODY
  endOfMessage: 0x45, // 'E' SMFIC_BODYEOB
  unknown: 0x55, // 'U' SMFIC_UNKNOWN
  abort: 0x41, // 'A' SMFIC_ABORT
  quit: 0x51, // 'Q' SMFIC_QUIT
  quitNewConnection: 0x4b, // 'K' SMFIC_QUIT_NC
} as const

/** Responses from the milter to the MTA (SMFIR_*). */
export const Resp = {
  optneg: 0x4f, // 'O' SMFIC_OPTNEG (the reply reuses the command code)
  continue: 0x63, // 'c' SMFIR_CONTINUE
  accept: 0x61, // 'a' SMFIR_ACCEPT
  reject: 0x72, // 'r' SMFIR_REJECT
  tempfail: 0x74, // 't' SMFIR_TEMPFAIL
  discard: 0x64, // 'd' SMFIR_DISCARD
  shutdown: 0x34, // '4' SMFIR_SHUTDOWN
  connectionFailure: 0x66, // 'f' SMFIR_CONN_FAIL
  replyCode: 0x79, // 'y' SMFIR_REPLYCODE
  progress: 0x70, // 'p' SMFIR_PROGRESS
  skip: 0x73, // 's' SMFIR_SKIP
  quarantine: 0x71, // 'q' SMFIR_QUARANTINE
  addHeader: 0x68, // 'h' SMFIR_ADDHEADER
  insertHeader: 0x69, // 'i' SMFIR_INSHEADER
  changeHeader: 0x6d, // 'm' SMFIR_CHGHEADER
  changeSender: 0x65, // 'e' SMFIR_CHGFROM
  addRecipient: 0x2b, // '+' SMFIR_ADDRCPT
  addRecipientWithArgs: 0x32, // '2' SMFIR_ADDRCPT_PAR
  deleteRecipient: 0x2d, // '-' SMFIR_DELRCPT
  replaceBody: 0x62, // 'b' SMFIR_REPLBODY
} as const

/** Address families in SMFIC_CONNECT (SMFIA_*). */
export const Family = {
  unknown: 0x55, // 'U' SMFIA_UNKNOWN: nothing follows the family byte
  unix: 0x4c, // 'L' SMFIA_UNIX: port 0 and the socket path
  inet4: 0x34, // '4' SMFIA_INET
  inet6: 0x36, // '6' SMFIA_INET6
} as const
export type FamilyName = keyof typeof Family

/** Actions the milter may take at end of message (SMFIF_*). */
export const Action = {
  addHeaders: 0x01, // SMFIF_ADDHDRS
  changeBody: 0x02, // SMFIF_CHGBODY
  addRecipients: 0x04, // SMFIF_ADDRCPT
  deleteRecipients: 0x08, // SMFIF_DELRCPT
  changeHeaders: 0x10, // SMFIF_CHGHDRS
  quarantine: 0x20, // SMFIF_QUARANTINE
  changeSender: 0x40, // SMFIF_CHGFROM
  addRecipientsWithArgs: 0x80, // SMFIF_ADDRCPT_PAR
  setSymbolList: 0x100, // SMFIF_SETSYMLIST
} as const
export const ALL_ACTIONS = 0x1ff

/**
 * Protocol flags (SMFIP_*). NO_x: the MTA does not send event x (its macros
 * still come). NR_x: the milter sends no reply to event x.
 */
export const Proto = {
  noConnect: 0x1, // SMFIP_NOCONNECT
  noHelo: 0x2, // SMFIP_NOHELO
  noMail: 0x4, // SMFIP_NOMAIL
  noRcpt: 0x8, // SMFIP_NORCPT
  noBody: 0x10, // SMFIP_NOBODY
  noHeaders: 0x20, // SMFIP_NOHDRS
  noEoh: 0x40, // SMFIP_NOEOH
  noReplyHeader: 0x80, // SMFIP_NR_HDR (= SMFIP_NOHREPL)
  noUnknown: 0x100, // SMFIP_NOUNKNOWN
  noData: 0x200, // SMFIP_NODATA
  skip: 0x400, // SMFIP_SKIP: the MTA understands SMFIR_SKIP
  rcptRejected: 0x800, // SMFIP_RCPT_REJ: also send rejected recipients
  noReplyConnect: 0x1000, // SMFIP_NR_CONN
  noReplyHelo: 0x2000, // SMFIP_NR_HELO
  noReplyMail: 0x4000, // SMFIP_NR_MAIL
  noReplyRcpt: 0x8000, // SMFIP_NR_RCPT
  noReplyData: 0x10000, // SMFIP_NR_DATA
  noReplyUnknown: 0x20000, // SMFIP_NR_UNKN
  noReplyEoh: 0x40000, // SMFIP_NR_EOH
  noReplyBody: 0x80000, // SMFIP_NR_BODY
  headerLeadingSpace: 0x100000, // SMFIP_HDR_LEADSPC
} as const
/** Every v6 protocol flag (SMFI_V6_PROT). */
export const ALL_PROTOCOL_FLAGS = 0x1fffff

/** Stages for macro symbol lists in the OPTNEG reply (SMFIM_*). */
export const MacroStage = {
  connect: 0, // SMFIM_CONNECT
  helo: 1, // SMFIM_HELO
  mail: 2, // SMFIM_ENVFROM
  rcpt: 3, // SMFIM_ENVRCPT
  data: 4, // SMFIM_DATA
  endOfMessage: 5, // SMFIM_EOM
  eoh: 6, // SMFIM_EOH
} as const

const byCode = <T extends Record<string, number>>(table: T): Map<number, keyof T> =>
  new Map(Object.entries(table).map(([k, v]) => [v, k as keyof T]))

export const CMD_BY_CODE = byCode(Cmd)
export const RESP_BY_CODE = byCode(Resp)
export const FAMILY_BY_CODE = byCode(Family)

/** A printable form of a command byte for logs: "'M' (0x4d)". */
export function describeCode(code: number): string {
  const ch = code >= 0x21 && code < 0x7f ? `'${String.fromCharCode(code)}' ` : ''
  return `${ch}(0x${code.toString(16).padStart(2, '0')})`
}
