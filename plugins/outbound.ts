/**
 * The outbound duty (docs/architecture.md §5.2, §6.3): tagged mail
 * leaves only over TLS to servers that declare the level, or bounces with a
 * 5.7.10 DSN that names the hop and the reason.
 *
 * - end of message: core/message's route step refuses relayed tagged mail
 *   whose recipient domain is known to fall below the tag's level;
 * - get_mx: looks up the destination's policy and prepares the attempt
 *   (outbound/attempt.ts: forced TLS, session probe, refusal handling), then
 *   lets routing go on (CONT) to whatever plugin or DNS lookup finds the MX;
 * - deferred: a TLS/certificate retry never waits past tls_retry_window;
 * - bounce / delivered: count linksec_tagged_messages_total.
 */
import { countTagged, enforcementOf } from '../core/enforce'
import { NO_REQUIREMENT, type Requirement } from '../core/levels'
import type { Duty, DutyContext } from './duty'
import { CONT, DENYSOFT, type Next } from './haraka'
import { notesOfTodo } from './notes'
import { attemptOf, clampedDelaySeconds, prepareAttempt } from './outbound/attempt'
import type { HMailItem } from './outbound/hmail'
import { lookupPeerPolicy, policyProviderFor } from './outbound/policy'
import { refuseMessage, type HarakaOutbound } from './outbound/refuse'

/** What a queued message requires, from the notes written at end of data. */
function requirementOfTodo(hmail: HMailItem): Requirement {
  const r = notesOfTodo(hmail.todo).requirement
  return r && typeof r.level === 'number' ? r : NO_REQUIREMENT
}

function harakaOutbound(ctx: DutyContext): HarakaOutbound | undefined {
  const req = ctx.plugin.haraka_require as ((name: string) => unknown) | undefined
  return req ? (req.call(ctx.plugin, './outbound') as HarakaOutbound) : undefined
}

async function onGetMx(ctx: DutyContext, next: Next, target: unknown): Promise<void> {
  const hmail = target as HMailItem
  const { rt } = ctx
  const req = requirementOfTodo(hmail)
  const domain = hmail.todo.domain
  const policy = await lookupPeerPolicy(rt, domain)
  const outbound = harakaOutbound(ctx)
  const provider = policyProviderFor(rt)
  prepareAttempt(
    rt,
    hmail,
    {
      req,
      policy,
      enforcement: enforcementOf(rt.config),
      probes: [],
      deferredForTls: false,
      windowEndsAt: hmail.todo.queue_time + rt.config.enforce.tls_retry_window * 1000,
    },
    {
      refuse: (h, refusals) => refuseMessage(rt, h, refusals, outbound),
      learnFromEhlo: provider.learnFromEhlo ? (lines) => provider.learnFromEhlo!(domain, lines) : undefined,
    },
  )
  next(CONT)
}

function onDeferred(ctx: DutyContext, next: Next, target: unknown, params: unknown): void {
  const hmail = target as HMailItem
  const state = attemptOf(hmail)
  if (!state?.deferredForTls) return next(CONT)
  state.deferredForTls = false
  countTagged(ctx.rt, state.req, 'deferred')
  const delay = Number((params as { delay?: unknown } | undefined)?.delay ?? 60)
  next(DENYSOFT, clampedDelaySeconds(state, delay, ctx.rt.now()))
}

function onBounce(ctx: DutyContext, next: Next, target: unknown): void {
  countTagged(ctx.rt, requirementOfTodo(target as HMailItem), 'bounced')
  next(CONT)
}

function onDelivered(ctx: DutyContext, next: Next, target: unknown, params: unknown): void {
  const secured = Boolean((params as unknown[] | undefined)?.[7])
  countTagged(
    ctx.rt,
    requirementOfTodo(target as HMailItem),
    secured ? 'delivered_tls' : 'delivered_plaintext',
  )
  next(CONT)
}

export const outboundDuty: Duty = {
  name: 'outbound',
  hooks: {
    // First, so the attempt is prepared whichever plugin then answers with the MX.
    get_mx: { handler: onGetMx, priority: -100 },
    deferred: { handler: onDeferred, priority: -100 },
    bounce: { handler: onBounce },
    delivered: { handler: onDelivered },
  },
  performs: ['noDowngrade', 'peerLevel'],
}
