import type { ProtocolContext } from '../core/protocol.js';
import type { ChildSa } from '../core/sa.js';
import { readU32be, u32be } from '../wire/bytes.js';
import { findAll, type Payload } from './codec.js';
import { ExchangeType, isErrorNotify, notifyName, ProtocolId } from './constants.js';
import { rekeyedTo, settleAwaitingDelete } from './child-handover.js';
import type { Ikev2Sa } from './ike-sa.js';
import { sendRequest, sendResponse } from './messages.js';

/**
 * INFORMATIONAL exchanges (RFC 7296 sections 1.4, 1.5, 2.4): Deletes of the IKE SA or of child
 * SAs, liveness checks (an empty request), and notifies.
 */

/** Deletes the IKE SA (and with it every child SA, section 1.4.1); the answer is not awaited. */
export function sendDeleteIke(ctx: ProtocolContext, sa: Ikev2Sa, then: () => void = () => {}): void {
  sendRequest(
    ctx,
    sa,
    ExchangeType.INFORMATIONAL,
    [{ kind: 'delete', protocolId: ProtocolId.IKE, spiSize: 0, spis: [] }],
    { onResponse: then, onTimeout: then },
  );
}

/** Deletes a child SA, naming its inbound SPI (the peer answers with its own). */
export function sendDeleteChild(ctx: ProtocolContext, sa: Ikev2Sa, child: ChildSa): void {
  sendDeleteSpi(ctx, sa, child.spiIn);
}

/**
 * A Delete for the child SA our inbound SPI `spiIn` belongs to: also for one the peer installed
 * on answering us and we then refused (section 1.3: the initiator deletes what it will not use).
 */
export function sendDeleteSpi(ctx: ProtocolContext, sa: Ikev2Sa, spiIn: number): void {
  sendRequest(
    ctx,
    sa,
    ExchangeType.INFORMATIONAL,
    [{ kind: 'delete', protocolId: ProtocolId.ESP, spiSize: 4, spis: [u32be(spiIn)] }],
    { onResponse: () => {}, onTimeout: () => {} },
  );
}

/** A liveness check: an empty INFORMATIONAL request; its answer is the proof (ProtocolContext.heard). */
export function sendLivenessCheck(ctx: ProtocolContext, sa: Ikev2Sa): void {
  sendRequest(ctx, sa, ExchangeType.INFORMATIONAL, [], {
    onResponse: () => ctx.heard(sa),
    // The core gives the peer up when its probes go unanswered (the configured DPD timeout).
    onTimeout: () => {},
  });
}

/** The peer's INFORMATIONAL request (verified): answer it, then act on it. */
export function respondToInformational(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  messageId: number,
  request: readonly Payload[],
): void {
  const deletes = findAll(request, 'delete');
  for (const n of findAll(request, 'notify'))
    ctx.log(isErrorNotify(n.notifyType) ? 'warn' : 'info', `peer sent ${notifyName(n.notifyType)}`, sa);
  if (deletes.some((d) => d.protocolId === ProtocolId.IKE)) {
    sendResponse(ctx, sa, ExchangeType.INFORMATIONAL, messageId, []);
    // The peer's rekey crossed ours and it deletes the old SA: its rekey won (section 2.8.2).
    const crossed = sa.ikeRekey?.collision;
    sa.ikeRekey = undefined;
    if (crossed && !crossed.next.deleted) rekeyedTo(ctx, sa, crossed.next);
    ctx.ikeDeletedByPeer(sa, 'delete');
    return;
  }
  // Section 1.4.1: the answer names our inbound SPIs of the pairs the peer deleted.
  const spisOut = deletes
    .filter((d) => d.protocolId === ProtocolId.ESP && d.spiSize === 4)
    .flatMap((d) => d.spis.map((spi) => readU32be(spi)));
  const ours = [
    ...sa.children.filter((entry) => spisOut.includes(entry.child.spiOut)).map((entry) => entry.child),
    ...sa.awaitingDelete.filter((a) => spisOut.includes(a.child.spiOut)).map((a) => a.child),
  ].map((child) => u32be(child.spiIn));
  sendResponse(
    ctx,
    sa,
    ExchangeType.INFORMATIONAL,
    messageId,
    ours.length ? [{ kind: 'delete', protocolId: ProtocolId.ESP, spiSize: 4, spis: ours }] : [],
  );
  if (!spisOut.length) return;
  // New child SAs waiting for this Delete go up first, then the pairs it names go.
  settleAwaitingDelete(ctx, sa, spisOut);
  ctx.childrenDeletedByPeer(sa, spisOut);
}
