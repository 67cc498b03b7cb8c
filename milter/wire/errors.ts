import { LinksecError } from '../../core/errors'

/**
 * Why a milter connection was closed; also the `reason` label of
 * linksec_milter_protocol_errors_total, so the set stays small and fixed.
 */
export type ProtocolErrorReason =
  | 'empty_frame'
  | 'oversized_frame'
  | 'unknown_command'
  | 'malformed_frame'
  | 'stage_order'
  | 'negotiation'
  | 'idle_timeout'
  | 'negotiation_timeout'
  | 'frame_timeout'
  | 'session_timeout'
  | 'too_many_sessions'
  | 'truncated'

/** The only error the codec throws; the session layer throws it for stage-order faults too. */
export class MilterProtocolError extends LinksecError {
  readonly reason: ProtocolErrorReason

  constructor(reason: ProtocolErrorReason, message: string) {
    super('LINKSEC_MILTER_PROTOCOL', message, { temporary: true })
    this.name = 'MilterProtocolError'
    this.reason = reason
  }
}

export function isMilterProtocolError(e: unknown): e is MilterProtocolError {
  return e instanceof MilterProtocolError
}
