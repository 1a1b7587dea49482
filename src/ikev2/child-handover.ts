import { without } from '../core/collections.js';
import type { ProtocolContext } from '../core/protocol.js';
import type { Ikev2Sa } from './ike-sa.js';

/**
 * The responder's side of a child SA rekey (RFC 7296 section 2.8): the new pair is made when we
 * answer, but the rekey's initiator installs it only once it has our answer. So we receive on
 * the new SAs at once and keep sending on the old ones until the initiator deletes them (or a
 * few seconds pass), and no packet of ours meets an SA the peer does not have yet.
 */

/** How long the outbound half of a child SA made for the peer's rekey waits for its Delete. */
export const OUTBOUND_WAIT = 5;
export const AWAITING_DELETE_TIMER = 'awaiting-delete';

/**
 * Child SAs of the peer's rekeys whose wait is over: the peer deleted the SAs they replace
 * (`deletedSpisOut`, our outbound SPIs it named), or their time ran out. Each goes up (the
 * outbound SA too) before the old pair is removed. A redundant one the peer deletes itself
 * (after simultaneous rekeys) goes without ever sending. `all`: every one now (the IKE SA is
 * being replaced).
 */
export function settleAwaitingDelete(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  deletedSpisOut: readonly number[] = [],
  all = false,
): void {
  for (const waiting of sa.awaitingDelete) {
    const deletedItself = deletedSpisOut.includes(waiting.child.spiOut);
    if (!all && !deletedItself && !deletedSpisOut.includes(waiting.oldSpiOut) && waiting.until > ctx.now)
      continue;
    sa.awaitingDelete = without(sa.awaitingDelete, waiting);
    if (deletedItself) ctx.endChild(waiting.negotiation);
    else ctx.childUp(waiting.negotiation, waiting.child);
  }
  if (sa.awaitingDelete.length)
    ctx.arm(sa, AWAITING_DELETE_TIMER, Math.min(...sa.awaitingDelete.map((a) => a.until)));
  else ctx.disarm(sa, AWAITING_DELETE_TIMER);
}

/**
 * The IKE SA `old` is replaced by `next` (section 2.18): child SAs still waiting to send go up,
 * then every child SA moves over.
 */
export function rekeyedTo(ctx: ProtocolContext, old: Ikev2Sa, next: Ikev2Sa): void {
  settleAwaitingDelete(ctx, old, [], true);
  ctx.ikeRekeyed(old, next);
}
