import { appended, without } from '../core/collections.js';
import type { Endpoint } from '../core/endpoint.js';
import type { ProtocolContext } from '../core/protocol.js';
import { Retransmission } from '../core/retransmit.js';
import { concat } from '../wire/bytes.js';
import {
  type DecodedMessage,
  decodePayloads,
  encodeMessage,
  encodePayloads,
  type HeaderFields,
  notify,
  type Payload,
  payloadType,
} from './codec.js';
import { ExchangeType, HeaderFlag, PayloadType } from './constants.js';
import type { Ikev2Sa, PendingRequest } from './ike-sa.js';
import { IntegrityFailure } from './protection.js';

/**
 * Sending and receiving IKEv2 messages on an SA: the header flags, encryption in an SK payload
 * (fragmented into SKF payloads when RFC 7383 was agreed and the message is too big), the window
 * of section 2.3 (one request of ours in flight, resent with backoff; the peer's retransmitted
 * request answered from the cached response), and reassembly of fragments with bounds.
 */

/** The timer our request in flight runs on. */
export const REQUEST_TIMER = 'request';

/** Reassembly bounds: fragments per message, bytes per message, seconds to wait for the rest. */
const MAX_FRAGMENTS = 64;
const MAX_REASSEMBLED = 64 * 1024;

function fields(sa: Ikev2Sa, exchangeType: number, messageId: number, response: boolean): HeaderFields {
  return {
    spiI: sa.spiI,
    spiR: sa.spiR,
    exchangeType,
    flags: (sa.originalInitiator ? HeaderFlag.INITIATOR : 0) | (response ? HeaderFlag.RESPONSE : 0),
    messageId,
  };
}

function transmit(ctx: ProtocolContext, sa: Ikev2Sa, datagrams: readonly Uint8Array[]): void {
  for (const data of datagrams)
    ctx.emit({ type: 'send', from: sa.local, to: sa.remote, data, nonEspMarker: sa.floated });
}

/**
 * The largest IKE message that fits the configured IP datagram size (EngineSettings.fragmentSize)
 * under the IP and UDP headers and, on port 4500, the non-ESP marker. Bigger ones go in
 * fragments once both sides support them (RFC 7383 2.5.1).
 */
function messageLimit(ctx: ProtocolContext, sa: Ikev2Sa): number {
  const ip = sa.remote.address.includes(':') ? 40 : 20;
  return ctx.settings.fragmentSize - ip - 8 - (sa.floated ? 4 : 0);
}

/** The datagrams of a message: in the clear for IKE_SA_INIT, else encrypted (and fragmented if due). */
function build(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  header: HeaderFields,
  payloads: readonly Payload[],
): Uint8Array[] {
  if (header.exchangeType === ExchangeType.IKE_SA_INIT) return [encodeMessage(header, payloads)];
  const protection = sa.protection!;
  const whole = protection.seal(header, payloads);
  const limit = messageLimit(ctx, sa);
  if (!sa.fragmentation || whole.length <= limit) return [whole];
  // RFC 7383 2.5.3: every fragment is encrypted on its own, numbered from 1. Its room: the limit
  // less the IKE header, the SKF header, IV, ICV and the most padding a block cipher may add.
  const chain = encodePayloads(payloads);
  const room = limit - 28 - 8 - protection.overhead(0) - 16;
  const total = Math.ceil(chain.length / room);
  const first = payloads.length ? payloadType(payloads[0]!) : PayloadType.NONE;
  return Array.from({ length: total }, (_, i) =>
    protection.seal(header, [], {
      number: i + 1,
      total,
      innerFirst: first,
      innerBytes: chain.subarray(i * room, Math.min(chain.length, (i + 1) * room)),
    }),
  );
}

/**
 * Sends a request now, or when the window frees (one of ours in flight at a time: RFC 7296 2.3
 * lets a peer announce more, and one is what every implementation must accept).
 */
export function sendRequest(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  exchangeType: number,
  payloads: readonly Payload[] | (() => readonly Payload[]),
  handlers: Pick<PendingRequest, 'onResponse' | 'onTimeout'>,
): void {
  const send = () => {
    const messageId = sa.nextRequestId++;
    const list = typeof payloads === 'function' ? payloads() : payloads;
    const datagrams = build(ctx, sa, fields(sa, exchangeType, messageId, false), list);
    const retransmission = new Retransmission(ctx.settings.retransmit, ctx.now);
    sa.pending = { messageId, exchangeType, datagrams, retransmission, ...handlers };
    if (exchangeType === ExchangeType.IKE_SA_INIT) sa.initRequest = datagrams[0];
    ctx.arm(sa, REQUEST_TIMER, retransmission.dueAt);
    transmit(ctx, sa, datagrams);
  };
  if (sa.pending) sa.queue = appended(sa.queue, { send });
  else send();
}

/** Our request's timer: send it again with backoff, or give up. */
export function requestTimeout(ctx: ProtocolContext, sa: Ikev2Sa): void {
  const pending = sa.pending;
  if (!pending) return;
  const { retransmission } = pending;
  const verdict = retransmission.poll(ctx.now);
  if (verdict === 'wait') {
    ctx.arm(sa, REQUEST_TIMER, retransmission.dueAt);
    return;
  }
  if (verdict === 'give-up') {
    sa.pending = undefined;
    pending.onTimeout();
    return;
  }
  ctx.log('debug', `retransmitting request ${pending.messageId} (${retransmission.resends})`, sa);
  ctx.event({ type: 'retransmit', ikeSa: sa.id, ...(sa.connection && { connection: sa.connection.name }) });
  transmit(ctx, sa, pending.datagrams);
  ctx.arm(sa, REQUEST_TIMER, retransmission.dueAt);
}

/** The response to our request in flight arrived (already authenticated): hand it over, send the next. */
export function responseArrived(ctx: ProtocolContext, sa: Ikev2Sa, payloads: readonly Payload[]): void {
  const pending = sa.pending!;
  sa.pending = undefined;
  ctx.disarm(sa, REQUEST_TIMER);
  pending.onResponse(payloads);
  const next = !sa.pending && !sa.deleted ? sa.queue[0] : undefined;
  if (!next) return;
  sa.queue = without(sa.queue, next);
  next.send();
}

/** Answers the peer's request (message ID `messageId`) and caches the answer for its retransmissions. */
export function sendResponse(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  exchangeType: number,
  messageId: number,
  payloads: readonly Payload[],
): void {
  const datagrams = build(ctx, sa, fields(sa, exchangeType, messageId, true), payloads);
  sa.lastResponse = { messageId, datagrams };
  if (exchangeType === ExchangeType.IKE_SA_INIT) sa.initResponse = datagrams[0];
  transmit(ctx, sa, datagrams);
}

/**
 * An answer we keep no state for: one notify in the clear to a first request (COOKIE,
 * INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN, UNSUPPORTED_CRITICAL_PAYLOAD), our SPI left zero.
 */
export function sendStateless(
  ctx: ProtocolContext,
  local: Endpoint,
  remote: Endpoint,
  request: { readonly spiI: Uint8Array; readonly exchangeType: number; readonly messageId: number },
  type: number,
  data?: Uint8Array,
): void {
  const header = { ...request, spiR: new Uint8Array(8), flags: HeaderFlag.RESPONSE };
  ctx.emit({
    type: 'send',
    from: local,
    to: remote,
    data: encodeMessage(header, [notify(type, data)]),
    nonEspMarker: local.port === ctx.settings.natPort,
  });
}

/** A request we saw before (the peer lost our answer): the cached answer again. */
export function resendResponse(ctx: ProtocolContext, sa: Ikev2Sa): void {
  if (sa.lastResponse) transmit(ctx, sa, sa.lastResponse.datagrams);
}

/** Fragments of one message being reassembled (RFC 7383 2.6). */
interface Reassembly {
  readonly messageId: number;
  readonly total: number;
  readonly parts: (Uint8Array | undefined)[];
  innerFirst: number;
  bytes: number;
  received: number;
}

const reassemblies = new WeakMap<Ikev2Sa, Reassembly>();

/**
 * The payloads of a protected message, decrypted and verified; a fragment gives undefined until
 * the last one is in. Throws IntegrityFailure (drop it, unverified) or DecodeError (verified but
 * malformed).
 */
export function openMessage(
  sa: Ikev2Sa,
  datagram: Uint8Array,
  message: DecodedMessage,
): Payload[] | undefined {
  const part = message.encrypted;
  if (!part) throw new IntegrityFailure('a message in the clear after IKE_SA_INIT');
  const opened = sa.protection!.open(datagram, part);
  if (!part.fragment) return [...message.payloads, ...opened.payloads!];
  const { number, total } = part.fragment;
  const messageId = message.header.messageId;
  let reassembly = reassemblies.get(sa);
  if (!reassembly || reassembly.messageId !== messageId || reassembly.total !== total) {
    if (total > MAX_FRAGMENTS) throw new IntegrityFailure(`${total} fragments`);
    reassembly = {
      messageId,
      total,
      parts: new Array<Uint8Array | undefined>(total),
      innerFirst: PayloadType.NONE,
      bytes: 0,
      received: 0,
    };
    reassemblies.set(sa, reassembly);
  }
  if (reassembly.parts[number - 1]) return undefined; // a duplicate
  reassembly.parts[number - 1] = opened.chain;
  reassembly.received++;
  reassembly.bytes += opened.chain.length;
  if (number === 1) reassembly.innerFirst = part.innerFirst;
  if (reassembly.bytes > MAX_REASSEMBLED) {
    reassemblies.delete(sa);
    throw new IntegrityFailure(`reassembled message over ${MAX_REASSEMBLED} bytes`);
  }
  // (Counted: an array with holes skips them in some(), so it cannot tell what is missing.)
  if (reassembly.received < reassembly.total) return undefined;
  reassemblies.delete(sa);
  return decodePayloads(concat(...(reassembly.parts as Uint8Array[])), reassembly.innerFirst);
}
