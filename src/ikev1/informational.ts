import { type Endpoint, formatEndpoint } from '../core/endpoint.js';
import type { ProtocolContext } from '../core/protocol.js';
import { equalBytes, u32be } from '../wire/bytes.js';
import { type DecodedMessage, encodePayloads, encodeMessage, type Payload } from './codec.js';
import { DOI_IPSEC, ExchangeType, notifyName, NotifyType, ProtocolId } from './constants.js';
import { beforeVerification, causeOfNotify, ExchangeError } from './errors.js';
import { findAll, type IsakmpSa, isakmpSpi, newMessageId } from './isakmp-sa.js';
import { quickModeRefused } from './quick-mode.js';

/**
 * Informational exchanges (RFC 2408 section 4.8, RFC 2409 section 5.7): notifies and deletes,
 * protected by the phase 1 SA with HASH(1) = prf(SKEYID_a, M-ID | N/D) once it exists, and the
 * DPD messages of RFC 3706 that travel in them.
 */

/** Sends one notify or delete in a new, protected informational exchange. */
export function sendInformational(ctx: ProtocolContext, sa: IsakmpSa, payload: Payload): void {
  const messageId = newMessageId(ctx, sa);
  const hash = sa.prf!.compute(sa.keys!.SKEYID_a, u32be(messageId), encodePayloads([payload]));
  sa.send(ctx, ExchangeType.INFORMATIONAL, messageId, [{ kind: 'hash', data: hash }, payload], {
    encrypt: true,
  });
  sa.protection!.forget(messageId);
}

export function deletePayload(protocolId: number, spis: readonly Uint8Array[]): Payload {
  return { kind: 'delete', doi: DOI_IPSEC, protocolId, spiSize: spis[0]!.length, spis };
}

/** A notify about the ISAKMP SA itself (errors, DPD), its SPI the cookie pair. */
export function isakmpNotify(
  sa: IsakmpSa,
  notifyType: number,
  data: Uint8Array = new Uint8Array(0),
): Payload {
  return {
    kind: 'notify',
    doi: DOI_IPSEC,
    protocolId: ProtocolId.ISAKMP,
    notifyType,
    spi: isakmpSpi(sa),
    data,
  };
}

export function dpdNotify(sa: IsakmpSa, type: number, seq: number): Payload {
  return isakmpNotify(sa, type, u32be(seq));
}

/**
 * An error notify outside any SA, in the clear: the answer to a first message we refuse
 * (RFC 2408 section 5.1), e.g. NO_PROPOSAL_CHOSEN.
 */
export function clearNotify(
  CKY_I: Uint8Array,
  CKY_R: Uint8Array,
  notifyType: number,
  from: Endpoint,
  to: Endpoint,
  nonEspMarker: boolean,
): { type: 'send'; from: Endpoint; to: Endpoint; data: Uint8Array; nonEspMarker: boolean } {
  const data = encodeMessage(
    { CKY_I, CKY_R, exchangeType: ExchangeType.INFORMATIONAL, flags: 0, messageId: 0 },
    [
      {
        kind: 'notify',
        doi: DOI_IPSEC,
        protocolId: ProtocolId.ISAKMP,
        notifyType,
        spi: new Uint8Array(0),
        data: new Uint8Array(0),
      },
    ],
  );
  return { type: 'send', from, to, data, nonEspMarker };
}

/**
 * Processes a received informational exchange for `sa`. Nothing changes before its HASH(1) is
 * verified; after that the peer is heard from, and followed if its NAT mapping moved.
 */
export function receiveInformational(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  message: DecodedMessage,
  local: Endpoint,
  remote: Endpoint,
): void {
  if (!message.payloads && sa.state !== 'ESTABLISHED' && !sa.protection) return;
  if (message.payloads) {
    // In the clear: only believable before the keys exist; it may end a negotiation.
    for (const notify of findAll(message.payloads, 'notify')) {
      const name = notifyName(notify.notifyType);
      ctx.logUnauthenticated('warn', 'clear-notify', `peer sent ${name} (unprotected)`, sa.connection?.name);
      if (notify.notifyType < 16384 && sa.state !== 'ESTABLISHED' && !sa.computing) {
        ctx.ikeFailed(sa, { cause: causeOfNotify(notify.notifyType), reason: `peer sent ${name}` });
        return;
      }
    }
    return;
  }
  const messageId = message.header.messageId;
  let payloads: readonly Payload[];
  try {
    payloads = beforeVerification(() => {
      const { payloads, chain } = sa.open(message);
      const hash = payloads[0];
      if (hash?.kind !== 'hash')
        throw new ExchangeError('informational without HASH(1)', NotifyType.INVALID_HASH_INFORMATION);
      const expected = sa.prf!.compute(
        sa.keys!.SKEYID_a,
        u32be(messageId),
        chain.subarray(4 + hash.data.length),
      );
      if (!equalBytes(expected, hash.data))
        throw new ExchangeError('informational HASH(1) mismatch', NotifyType.INVALID_HASH_INFORMATION);
      return payloads;
    });
  } finally {
    sa.protection?.forget(messageId);
  }
  // A replay proves nothing: not that the peer is alive, nor where it is now.
  if (!sa.firstInformational(messageId)) {
    ctx.logUnauthenticated(
      'debug',
      'informational-replay',
      `informational ${messageId.toString(16).padStart(8, '0')} from ${formatEndpoint(remote)} again: dropped as a replay`,
      sa.connection?.name,
    );
    return;
  }
  ctx.heard(sa);
  if (sa.state === 'ESTABLISHED') ctx.peerMoved(sa, local, remote);
  for (const payload of payloads.slice(1)) {
    if (payload.kind === 'delete') onDelete(ctx, sa, payload);
    else if (payload.kind === 'notify') onNotify(ctx, sa, payload);
  }
}

function onDelete(ctx: ProtocolContext, sa: IsakmpSa, payload: Extract<Payload, { kind: 'delete' }>): void {
  if (payload.protocolId === ProtocolId.ISAKMP) {
    // The peer deleted this ISAKMP SA; its IPsec SAs live on (RFC 2409 keeps the phases apart).
    if (payload.spis.some((spi) => equalBytes(spi, isakmpSpi(sa)))) ctx.ikeDeletedByPeer(sa, 'keep');
    return;
  }
  if (payload.protocolId === ProtocolId.IPSEC_ESP)
    ctx.childrenDeletedByPeer(
      sa,
      payload.spis
        .filter((spi) => spi.length === 4)
        .map((spi) => new DataView(spi.buffer, spi.byteOffset).getUint32(0)),
    );
}

function onNotify(ctx: ProtocolContext, sa: IsakmpSa, notify: Extract<Payload, { kind: 'notify' }>): void {
  switch (notify.notifyType) {
    case NotifyType.R_U_THERE:
      sendInformational(ctx, sa, dpdNotify(sa, NotifyType.R_U_THERE_ACK, readSeq(notify.data)));
      return;
    case NotifyType.R_U_THERE_ACK:
      // Any authenticated message says the peer is alive (ProtocolContext.heard, above).
      return;
    case NotifyType.INITIAL_CONTACT:
      ctx.initialContact(sa);
      return;
    default:
      ctx.log(notify.notifyType < 16384 ? 'warn' : 'info', `peer sent ${notifyName(notify.notifyType)}`, sa);
      // A refusal of what a quick mode offered ends the ones waiting; other errors do not: strongSwan
      // answers a retransmitted message 1 it is still working on with PAYLOAD_MALFORMED, and its
      // message 2 follows (the kernel lab's loaded runs).
      if (QUICK_MODE_REFUSALS.has(notify.notifyType)) quickModeRefused(ctx, sa, notify.notifyType);
  }
}

/** Notify types (RFC 2408 section 3.14.1) that refuse the content of a quick mode offer. */
const QUICK_MODE_REFUSALS: ReadonlySet<number> = new Set([
  NotifyType.INVALID_PROTOCOL_ID,
  NotifyType.INVALID_TRANSFORM_ID,
  NotifyType.ATTRIBUTES_NOT_SUPPORTED,
  NotifyType.NO_PROPOSAL_CHOSEN,
  NotifyType.BAD_PROPOSAL_SYNTAX,
  NotifyType.INVALID_KEY_INFORMATION,
  NotifyType.INVALID_ID_INFORMATION,
]);

function readSeq(data: Uint8Array): number {
  return data.length === 4 ? new DataView(data.buffer, data.byteOffset).getUint32(0) : -1;
}
