/**
 * The one end-of-message pipeline (pipeline.ts): both adapters build
 * MessageFacts (facts.ts), call runMessage, and translate its MessageResult.
 */
export type { ClientFacts, MessageFacts, SubmitterFacts } from './facts'
export type { AdapterProfile, MessageStep, MessageView, StepDecision } from './step'
export { messageStep } from './step'
export { AUTH_RESULTS, ORIGINAL_AUTH_RESULTS, forgedResultEdits, inboundLinkStep } from './inbound-link'
export { recipientPolicy, routeStep } from './route'
export { verifyStep } from './verify'
export { signStep } from './sign'
export { wksStep } from './wks'
export {
  MESSAGE_STEPS,
  appliedEdits,
  keepsMessage,
  messageView,
  requirementOf,
  runMessage,
  type MessageResult,
  type PipelineOptions,
} from './pipeline'
