/**
 * Option negotiation (SMFIC_OPTNEG): answer with a subset of what the MTA
 * offers. Events the handler does not need are switched off (NO_x), events it
 * only observes get no reply (NR_x), so Postfix batches them into one write
 * and waits on as few round trips as possible.
 */
import { Action, MacroStage, MILTER_VERSION, Proto } from './wire/codes'
import { MilterProtocolError } from './wire/errors'
import type { MilterCommand, MilterResponse, SymbolList } from './wire/types'

/** SMTP events a handler can take part in. */
export type EventName = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'header' | 'eoh' | 'body' | 'unknown'

/**
 * How much of an event the handler needs: not at all (NO_x), to see it
 * without replying (NR_x), to see it and acknowledge it with continue (paces
 * the MTA, see milterNeeds in app.ts), or to decide the reply.
 */
export type Need = 'none' | 'observe' | 'acknowledge' | 'decide'

export interface HandlerNeeds {
  events: Readonly<Record<EventName, Need>>
  /** Actions (SMFIF_*) the handler may ask for at end of message. */
  actions: number
  /**
   * Macros to ask for per stage (SMFIF_SETSYMLIST), as space-separated names.
   * A list given here replaces the MTA's (Postfix: milter_<stage>_macros).
   */
  macros?: Partial<Record<keyof typeof MacroStage, string>>
}

export interface Negotiated {
  version: number
  actions: number
  protocol: number
  /** Whether the MTA understands SMFIR_SKIP. */
  canSkip: boolean
}

const EVENT_FLAGS: Record<EventName, { not: number; noReply: number }> = {
  connect: { not: Proto.noConnect, noReply: Proto.noReplyConnect },
  helo: { not: Proto.noHelo, noReply: Proto.noReplyHelo },
  mail: { not: Proto.noMail, noReply: Proto.noReplyMail },
  rcpt: { not: Proto.noRcpt, noReply: Proto.noReplyRcpt },
  data: { not: Proto.noData, noReply: Proto.noReplyData },
  header: { not: Proto.noHeaders, noReply: Proto.noReplyHeader },
  eoh: { not: Proto.noEoh, noReply: Proto.noReplyEoh },
  body: { not: Proto.noBody, noReply: Proto.noReplyBody },
  unknown: { not: Proto.noUnknown, noReply: Proto.noReplyUnknown },
}

/** The protocol flags we ask for, limited to what the MTA offered. */
function wantedProtocol(needs: HandlerNeeds, offered: number): number {
  let want = Proto.skip
  for (const [event, flags] of Object.entries(EVENT_FLAGS) as [
    EventName,
    (typeof EVENT_FLAGS)[EventName],
  ][]) {
    const need = needs.events[event]
    if (need === 'none') want |= flags.not
    else if (need === 'observe') want |= flags.noReply
  }
  return want & offered
}

export function negotiate(
  offer: Extract<MilterCommand, { type: 'optneg' }>,
  needs: HandlerNeeds,
): { negotiated: Negotiated; reply: MilterResponse } {
  if (offer.version < 2)
    throw new MilterProtocolError(
      'negotiation',
      `MTA offers milter protocol version ${offer.version}; 2..6 needed`,
    )
  const version = Math.min(offer.version, MILTER_VERSION)
  const symbolLists = (offer.actions & Action.setSymbolList) !== 0 ? wantedSymbolLists(needs) : []
  const actions = (needs.actions | (symbolLists.length ? Action.setSymbolList : 0)) & offer.actions
  const protocol = wantedProtocol(needs, offer.protocol)
  return {
    negotiated: { version, actions, protocol, canSkip: (protocol & Proto.skip) !== 0 },
    reply: { type: 'optneg', version, actions, protocol, symbolLists },
  }
}

function wantedSymbolLists(needs: HandlerNeeds): SymbolList[] {
  return Object.entries(needs.macros ?? {}).map(([stage, macros]) => ({
    stage: MacroStage[stage as keyof typeof MacroStage],
    macros: macros,
  }))
}

/** Whether the MTA waits for our reply to this event. */
export function expectsReply(n: Negotiated, event: EventName): boolean {
  return (n.protocol & EVENT_FLAGS[event].noReply) === 0
}

export function isSent(n: Negotiated, event: EventName): boolean {
  return (n.protocol & EVENT_FLAGS[event].not) === 0
}
