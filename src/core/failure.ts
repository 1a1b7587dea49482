/**
 * Why a negotiation failed, typed, so that status, events and metrics read the cause instead of
 * matching message text. `reason` is the human sentence (what the log and status show).
 */
export type FailureCause =
  /** No proposal of ours matched the peer's offer, either direction (NO_PROPOSAL_CHOSEN). */
  | 'no-proposal'
  /** The keys differ (a wrong pre-shared key) or a message's integrity check failed. */
  | 'authentication'
  /** The peer's identity is not the one configured (INVALID_ID_INFORMATION, wrong IDi/IDr). */
  | 'identity'
  /** The traffic selectors do not fit the configuration (TS_UNACCEPTABLE, quick mode IDs). */
  | 'selectors'
  /** No answer within the retransmission budget, or a half-open SA that was never completed. */
  | 'timeout'
  /** The peer answered with an error notify we have no better cause for. */
  | 'peer-notify'
  /** Liveness checks (DPD) went unanswered. */
  | 'dead-peer'
  /** The kernel refused an SA. */
  | 'kernel'
  /** Our own configuration cannot do it (no local address, an "any" peer asked to initiate). */
  | 'config'
  /** A message we could not parse or that broke the protocol's rules. */
  | 'malformed';

export interface Failure {
  readonly cause: FailureCause;
  readonly reason: string;
}

export const FAILURE_CAUSES: readonly FailureCause[] = [
  'no-proposal',
  'authentication',
  'identity',
  'selectors',
  'timeout',
  'peer-notify',
  'dead-peer',
  'kernel',
  'config',
  'malformed',
];
