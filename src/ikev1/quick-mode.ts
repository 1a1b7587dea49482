import { parseAddress } from '../core/address.js';
import { type Connection, type IpsecMode, policyLabel } from '../core/connection.js';
import { type Endpoint, formatEndpoint } from '../core/endpoint.js';
import type { ChildEntry, ChildNegotiation } from '../core/ike-sa.js';
import { explainMismatch, formatSuite, sameSuite, selectSuite, type Suite } from '../core/proposal.js';
import type { ProtocolContext } from '../core/protocol.js';
import { type ChildSa, type Role, udpEncapsulated } from '../core/sa.js';
import {
  contains,
  formatTrafficSelector,
  parseTrafficSelector,
  type TrafficSelector,
} from '../core/traffic-selector.js';
import { type DhJobResult, madeBefore } from '../crypto/dh-job.js';
import { quickModeKeymat } from '../crypto/kdf-ikev1.js';
import { sealKeys } from '../crypto/secret.js';
import { encryptionOf, integrityOf } from '../crypto/transforms.js';
import { equalBytes, u32be } from '../wire/bytes.js';
import type { DecodeError } from '../wire/errors.js';
import {
  type DecodedMessage,
  decodeAttributes,
  encodeAttributes,
  encodePayloads,
  type Payload,
} from './codec.js';
import { ExchangeType, IdType, notifyName, NotifyType, ProtocolId } from './constants.js';
import { computeDh } from './dh.js';
import {
  beforeVerification,
  causeOfNotify,
  ExchangeError,
  failureOf,
  notifyOf,
  UnverifiedMessage,
} from './errors.js';
import { Flight } from './flight.js';
import { idFromTrafficSelector, trafficSelectorFromId } from './identification.js';
import { deletePayload, isakmpNotify, sendInformational } from './informational.js';
import { find, findAll, type IsakmpSa, newMessageId } from './isakmp-sa.js';
import { decodeEncapsulationMode, encapsulationMode } from './nat-t.js';
import {
  type Lifetimes,
  lifetimeAttributes,
  parsePhase2Sa,
  type Phase2Offer,
  phase2Sa,
  readLifetimes,
} from './proposals.js';

/**
 * Quick mode (RFC 2409 section 5.5), both roles, with optional PFS and client IDs:
 *
 *   1 I->R  HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr] [, NAT-OAi, NAT-OAr]
 *   2 R->I  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr] [, N(RESPONDER-LIFETIME)]
 *   3 I->R  HDR*, HASH(3)
 *
 * The initiator installs its SAs after sending message 3. The responder installs its inbound SA
 * before it sends message 2 and the rest after receiving message 3: the initiator sends on its new
 * SA right after message 3, and a packet that overtook our reading of message 3 (or a rekey's
 * switch) would otherwise meet no SA.
 */

const NONCE_LENGTH = 32;
const DEFAULT_PHASE2_LIFETIME = 28800; // RFC 2407 section 4.5
/** An initiator's finished exchange is kept this long, to answer a repeated message 2 with message 3 again. */
export const DONE_EXCHANGE_LINGER = 30;
/** Finished exchanges kept per ISAKMP SA at most (a peer that runs many quick modes fast). */
const MAX_LINGERING = 32;

type IdPayload = Extract<Payload, { kind: 'id' }>;

export interface QuickModeExchange {
  readonly messageId: number;
  readonly role: Role;
  readonly flight: Flight;
  readonly negotiation: ChildNegotiation;
  readonly connection: Connection;
  state: 'QM_I1' | 'QM_R1' | 'DONE';
  /** Ours, once the kernel reserved it (ProtocolContext.allocateSpi); empty until then. */
  spiIn: Uint8Array;
  spiOut?: Uint8Array;
  Ni_b: Uint8Array;
  Nr_b?: Uint8Array;
  /** PFS: our key pair (sealed) and g^xy of quick mode. */
  dh?: DhJobResult;
  gqm?: Uint8Array;
  /** A Diffie-Hellman computation is under way: the peer's messages wait for their retransmission. */
  computing: boolean;
  offered: readonly Suite[];
  suite?: Suite;
  /** Proposed (initiator) or chosen from the offer (responder). */
  mode: IpsecMode;
  udp: boolean;
  localTs: TrafficSelector;
  remoteTs: TrafficSelector;
  ids?: { readonly ci: IdPayload; readonly cr: IdPayload };
  lifetime: Lifetimes;
  doneAt?: number;
  /** The responder's child SA, built when it answers; its inbound SA is installed from then on. */
  child?: ChildSa;
}

function timerOf(messageId: number): string {
  return `qm:${messageId}`;
}

/** The message ID a quick mode timer belongs to, or undefined for another timer. */
export function quickModeTimer(name: string): number | undefined {
  return name.startsWith('qm:') ? Number(name.slice(3)) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Initiator

export function startQuickMode(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  connection: Connection,
  localTs: TrafficSelector,
  remoteTs: TrafficSelector,
  rekeyOf?: ChildEntry,
): void {
  const { ipsec } = connection;
  const negotiation = ctx.beginChild(sa, connection, { localTs, remoteTs, supersedes: true }, rekeyOf?.id)!;
  const udp = udpEncapsulated(sa.nat) && sa.natT !== undefined;
  // A rekey asks for no more than the SA it replaces had: a peer that imposed a shorter lifetime
  // would otherwise enforce it silently.
  const seconds = Math.min(ipsec.lifetime.seconds, rekeyOf?.child.lifetime.seconds ?? Infinity);
  const messageId = newMessageId(ctx, sa);
  const exchange: QuickModeExchange = {
    messageId,
    role: 'initiator',
    flight: new Flight(timerOf(messageId)),
    negotiation,
    connection,
    state: 'QM_I1',
    spiIn: new Uint8Array(0),
    Ni_b: ctx.crypto.randomBytes(NONCE_LENGTH),
    computing: true,
    offered: ipsec.proposals.map((suite) => ({ ...suite, ...(ipsec.pfs && { dh: ipsec.pfs }) })),
    mode: ipsec.mode,
    udp,
    localTs,
    remoteTs,
    ids: { ci: idFromTrafficSelector(localTs), cr: idFromTrafficSelector(remoteTs) },
    lifetime: {
      seconds,
      ...(ipsec.lifetime.kilobytes && { kilobytes: ipsec.lifetime.kilobytes }),
    },
  };
  (sa.exchanges ??= new Map()).set(messageId, exchange);
  sa.quickModeUsed(messageId);
  const send = () => {
    const payloads: Payload[] = [
      phase2Sa(exchange.offered, {
        spi: exchange.spiIn,
        encapsulation: encapsulationMode(ipsec.mode, udp ? sa.natT : undefined),
        lifetime: exchange.lifetime,
      }),
      { kind: 'nonce', data: exchange.Ni_b },
    ];
    if (exchange.dh) payloads.push({ kind: 'ke', data: exchange.dh.publicKey });
    payloads.push(exchange.ids!.ci, exchange.ids!.cr);
    if (udp && ipsec.mode === 'transport') payloads.push(...natOaPayloads(sa, 'initiator'));
    sendProtected(ctx, sa, exchange, payloads, [], true);
    ctx.log(
      'info',
      `quick mode ${hexId(messageId)}: ${formatTrafficSelector(localTs)} === ${formatTrafficSelector(remoteTs)}` +
        ` ${ipsec.mode}${udp ? ' UDP-encapsulated' : ''}, offering ${exchange.offered.map(formatSuite).join(', ')}`,
      sa,
      connection.name,
    );
  };
  ctx.allocateSpi(sa, (spi) => {
    exchange.spiIn = u32be(spi);
    exchange.computing = false;
    if (ipsec.pfs) pfs(ctx, sa, exchange, undefined, send);
    else send();
  });
}

function onMessage2(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  exchange: QuickModeExchange,
  payloads: readonly Payload[],
): void {
  const saPayload = find(payloads, 'sa');
  const nonce = find(payloads, 'nonce');
  if (!saPayload || !nonce)
    throw new ExchangeError('quick mode message 2 without SA or nonce', NotifyType.PAYLOAD_MALFORMED);
  const { offers } = parsePhase2Sa(saPayload);
  const chosen = offers.length === 1 ? offers[0]! : undefined;
  if (!chosen || !exchange.offered.some((suite) => sameSuite(suite, chosen.suite)))
    throw new ExchangeError('responder chose a transform we did not offer', NotifyType.NO_PROPOSAL_CHOSEN);
  const ids = findAll(payloads, 'id');
  if (!responderIdsAcceptable(exchange.ids!, ids, exchange.mode === 'transport' && exchange.udp))
    throw new ExchangeError(
      'responder changed the client IDs',
      NotifyType.INVALID_ID_INFORMATION,
      [],
      'selectors',
    );
  if (chosen.suite.dh && !find(payloads, 'ke'))
    throw new ExchangeError('PFS negotiated but no KE payload', NotifyType.INVALID_KEY_INFORMATION);
  exchange.suite = chosen.suite;
  exchange.spiOut = chosen.spi;
  exchange.Nr_b = nonce.data;
  for (const notify of findAll(payloads, 'notify')) {
    if (notify.notifyType === NotifyType.RESPONDER_LIFETIME) {
      const adopted = readLifetimes(decodeAttributes(notify.data));
      exchange.lifetime = { ...exchange.lifetime, ...adopted };
      ctx.log('info', `responder lifetime: ${JSON.stringify(adopted)}`, sa, exchange.connection.name);
    }
  }
  const finish = () => {
    const hash3 = sa.prf!.compute(
      sa.keys!.SKEYID_a,
      Uint8Array.of(0),
      u32be(exchange.messageId),
      exchange.Ni_b,
      exchange.Nr_b!,
    );
    sa.send(ctx, ExchangeType.QUICK_MODE, exchange.messageId, [{ kind: 'hash', data: hash3 }], {
      encrypt: true,
      flight: exchange.flight,
      awaitReply: false,
    });
    ctx.childUp(exchange.negotiation, childSa(ctx, sa, exchange));
    done(ctx, sa, exchange);
  };
  if (exchange.dh) pfs(ctx, sa, exchange, find(payloads, 'ke')!.data, finish);
  else finish();
}

// ---------------------------------------------------------------------------------------------
// Responder

export function respondToQuickMode(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  message: DecodedMessage,
  datagram: Uint8Array,
  local: Endpoint,
  remote: Endpoint,
): void {
  const messageId = message.header.messageId;
  const opened = beforeVerification(() => {
    const opened = sa.open(message);
    verifyHash(sa, opened.payloads, opened.chain, [], 'HASH(1)', messageId);
    return opened;
  });
  opened.accept();
  const { payloads } = opened;
  ctx.heard(sa);
  ctx.peerMoved(sa, local, remote);
  const saPayload = find(payloads, 'sa');
  const nonce = find(payloads, 'nonce');
  if (!saPayload || !nonce)
    throw new ExchangeError('quick mode without SA or nonce', NotifyType.PAYLOAD_MALFORMED);
  const { offers, skipped } = parsePhase2Sa(saPayload);
  const ids = findAll(payloads, 'id');
  if (ids.length !== 0 && ids.length !== 2)
    throw new ExchangeError(`quick mode with ${ids.length} ID payloads`, NotifyType.INVALID_ID_INFORMATION);
  // Without client IDs the selectors are the phase 1 addresses (RFC 2409 section 5.5).
  const offeredRemote = ids.length ? trafficSelectorFromId(ids[0]!) : parseTrafficSelector(sa.remote.address);
  const offeredLocal = ids.length ? trafficSelectorFromId(ids[1]!) : parseTrafficSelector(sa.local.address);

  const reasons: string[] = [];
  const policies: { what: string; suites: Suite[] }[] = [];
  let selectorsOnly = true;
  for (const connection of ctx.siblings(sa.connection!)) {
    const { ipsec } = connection;
    const modes = ipsec.acceptModes ?? [ipsec.mode];
    // PFS preference first: a suite with our group beats the same suite without PFS.
    const ours = (ipsec.acceptPfs ?? [ipsec.pfs ?? 'none']).flatMap((pfs) =>
      ipsec.proposals.map((suite) => (pfs === 'none' ? suite : { ...suite, dh: pfs })),
    );
    const usable = offers.filter((offer) => {
      const mode = decodeEncapsulationMode(offer.encapsulation)?.mode;
      return mode !== undefined && modes.includes(mode);
    });
    const index = selectSuite(
      ours,
      usable.map((offer) => offer.suite),
    );
    if (index === undefined) {
      selectorsOnly = false;
      reasons.push(
        `'${connection.name}' accepts ${ours.map(formatSuite).join(', ')} in ${modes.join(' or ')} mode`,
      );
      if (usable.length)
        policies.push({ what: policyLabel('ipsecPolicy', ipsec.name, connection.name), suites: ours });
      continue;
    }
    const mode = decodeEncapsulationMode(usable[index]!.encapsulation)!.mode;
    const localTs = substitute(offeredLocal, mode === 'transport' && sa.nat.local, sa.local.address);
    const remoteTs = substitute(offeredRemote, mode === 'transport' && sa.nat.remote, sa.remote.address);
    if (!selectorsFit(connection, localTs, remoteTs)) {
      reasons.push(
        `'${connection.name}' does not cover ${formatTrafficSelector(offeredLocal)} === ${formatTrafficSelector(offeredRemote)}`,
      );
      continue;
    }
    const ke = find(payloads, 'ke');
    const offer = usable[index]!;
    if (!offer.suite.dh && ke)
      throw new ExchangeError('KE payload without a PFS group', NotifyType.INVALID_KEY_INFORMATION);
    if (offer.suite.dh && !ke)
      throw new ExchangeError('PFS negotiated but no KE payload', NotifyType.INVALID_KEY_INFORMATION);
    answer(
      ctx,
      sa,
      messageId,
      datagram,
      connection,
      offer,
      nonce.data,
      ke,
      localTs,
      remoteTs,
      ids,
      saPayload,
    );
    return;
  }
  const offered = offers.map(
    (o) =>
      `${formatSuite(o.suite)} (${decodeEncapsulationMode(o.encapsulation)?.mode ?? 'mode ' + o.encapsulation})`,
  );
  const advice = explainMismatch(
    policies,
    offers.map((o) => o.suite),
  );
  throw new ExchangeError(
    `quick mode: no proposal chosen: peer offers ${offered.join(', ') || 'nothing usable'} for ` +
      `${formatTrafficSelector(offeredRemote)} === ${formatTrafficSelector(offeredLocal)}` +
      `${skipped.length ? ` (unusable: ${skipped.join('; ')})` : ''}; ${reasons.join('; ')}` +
      `${advice ? `; ${advice}` : ''}`,
    NotifyType.NO_PROPOSAL_CHOSEN,
    [sa.connection!.name],
    selectorsOnly && reasons.length ? 'selectors' : 'no-proposal',
  );
}

function answer(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  messageId: number,
  datagram: Uint8Array,
  connection: Connection,
  offer: Phase2Offer,
  Ni_b: Uint8Array,
  ke: Extract<Payload, { kind: 'ke' }> | undefined,
  localTs: TrafficSelector,
  remoteTs: TrafficSelector,
  ids: readonly IdPayload[],
  saPayload: Extract<Payload, { kind: 'sa' }>,
): void {
  // IKEv1 does not mark a rekey: a quick mode for a pair we have a child SA for replaces it.
  const negotiation = ctx.beginChild(sa, connection, {
    localTs,
    remoteTs,
    peerStarted: true,
    supersedes: true,
  });
  if (!negotiation) {
    // Too many under way: no answer, no state (the IV this message would have started goes too).
    sa.protection?.forget(messageId);
    return;
  }
  const { ipsec } = connection;
  const offeredSeconds = offer.lifetime.seconds ?? DEFAULT_PHASE2_LIFETIME;
  const lifetime: Lifetimes = {
    seconds: Math.min(offeredSeconds, ipsec.lifetime.seconds),
    ...((offer.lifetime.kilobytes ?? ipsec.lifetime.kilobytes) !== undefined && {
      kilobytes: Math.min(offer.lifetime.kilobytes ?? Infinity, ipsec.lifetime.kilobytes ?? Infinity),
    }),
  };
  const exchange: QuickModeExchange = {
    messageId,
    role: 'responder',
    flight: new Flight(timerOf(messageId)),
    negotiation,
    connection,
    state: 'QM_R1',
    spiIn: new Uint8Array(0),
    spiOut: offer.spi,
    Ni_b,
    Nr_b: ctx.crypto.randomBytes(NONCE_LENGTH),
    offered: [offer.suite],
    suite: offer.suite,
    mode: decodeEncapsulationMode(offer.encapsulation)!.mode,
    udp: decodeEncapsulationMode(offer.encapsulation)!.udp,
    localTs,
    remoteTs,
    ...(ids.length === 2 && { ids: { ci: ids[0]!, cr: ids[1]! } }),
    lifetime,
    computing: true,
  };
  addExchange(ctx, sa, exchange);
  sa.quickModeUsed(messageId);
  exchange.flight.received(datagram, { alreadyAnswered: true });
  const reply = () => {
    const proposal = saPayload.proposals.find((p) => p.number === offer.proposalNumber)!;
    const payloads: Payload[] = [
      { ...saPayload, proposals: [{ ...proposal, spi: exchange.spiIn, transforms: [offer.transform] }] },
      { kind: 'nonce', data: exchange.Nr_b! },
    ];
    if (exchange.dh) payloads.push({ kind: 'ke', data: exchange.dh.publicKey });
    if (exchange.ids) payloads.push(exchange.ids.ci, exchange.ids.cr);
    if (exchange.udp && exchange.mode === 'transport') payloads.push(...natOaPayloads(sa, 'responder'));
    if (offeredSecondsExceed(offer, ipsec)) {
      // RFC 2407 section 4.6.3.1: tell the initiator the shorter lifetime we apply.
      payloads.push({
        kind: 'notify',
        doi: 1,
        protocolId: ProtocolId.IPSEC_ESP,
        notifyType: NotifyType.RESPONDER_LIFETIME,
        spi: exchange.spiIn,
        data: encodeAttributes(lifetimeAttributes(lifetime)),
      });
    }
    exchange.child = childSa(ctx, sa, exchange);
    ctx.installInbound(negotiation, exchange.child);
    sendProtected(ctx, sa, exchange, payloads, [Ni_b], true);
    ctx.log(
      'info',
      `quick mode ${hexId(messageId)} for '${connection.name}': ${formatTrafficSelector(localTs)} === ` +
        `${formatTrafficSelector(remoteTs)} ${exchange.mode}${exchange.udp ? ' UDP-encapsulated' : ''}, chose ${formatSuite(offer.suite)}`,
      sa,
      connection.name,
    );
  };
  ctx.allocateSpi(sa, (spi) => {
    exchange.spiIn = u32be(spi);
    exchange.computing = false;
    if (offer.suite.dh) pfs(ctx, sa, exchange, ke!.data, reply);
    else reply();
  });
}

/**
 * RFC 3947 section 5.2: in UDP-encapsulated transport mode both sides send the original addresses
 * as they see them, the initiator's first (NAT-OAi, NAT-OAr), so the receiver can fix the
 * checksums of transport-mode TCP and UDP after decapsulation.
 */
function natOaPayloads(sa: IsakmpSa, role: 'initiator' | 'responder'): Payload[] {
  const draft = sa.natT !== 'rfc3947';
  const addresses = role === 'initiator' ? [sa.local, sa.remote] : [sa.remote, sa.local];
  return addresses.map(({ address }) => {
    const bytes = parseAddress(address);
    return {
      kind: 'nat-oa',
      draft,
      idType: bytes.length === 4 ? IdType.ID_IPV4_ADDR : IdType.ID_IPV6_ADDR,
      address: bytes,
    };
  });
}

/**
 * The responder's exchange ends with message 3 and does not linger: message 3 is the last word,
 * so nothing of ours would answer a repeat of it, and a late copy of message 1 (which message 3
 * shows the initiator had its answer to) is dropped as a replay (IsakmpSa.usedQuickMode). A
 * gateway sees one of these per client and rekey; 30 s of each would pass into the old
 * generation of the heap for nothing.
 */
function onMessage3(ctx: ProtocolContext, sa: IsakmpSa, exchange: QuickModeExchange): void {
  const { negotiation } = exchange;
  const child = exchange.child!;
  if (negotiation.refused !== undefined) {
    // The initiator installed its SAs when it sent message 3: the Delete takes them away again.
    sendInformational(ctx, sa, deletePayload(ProtocolId.IPSEC_ESP, [u32be(child.spiIn)]));
    ctx.log('warn', `quick mode done, child SA deleted: ${negotiation.refused}`, sa, child.connection);
    ctx.endChild(negotiation);
  } else {
    // The endpoints of now: a NAT mapping may have moved since message 2 (the kernel then
    // installs the inbound SA again with them).
    ctx.childUp(negotiation, { ...child, local: sa.local, remote: sa.remote });
  }
  dropExchange(ctx, sa, exchange);
}

/**
 * Handles a quick mode message of an exchange we know (messages 2 and 3). Nothing changes before
 * its HASH is verified; then the peer is heard from, and followed if its NAT mapping moved.
 */
export function continueQuickMode(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  exchange: QuickModeExchange,
  message: DecodedMessage,
  datagram: Uint8Array,
  local: Endpoint,
  remote: Endpoint,
): void {
  if (exchange.state === 'DONE' || exchange.computing) return;
  const opened = beforeVerification(() => {
    const opened = sa.open(message);
    if (exchange.state === 'QM_I1')
      verifyHash(sa, opened.payloads, opened.chain, [exchange.Ni_b], 'HASH(2)', exchange.messageId);
    else verifyHash3(sa, exchange, opened.payloads);
    return opened;
  });
  opened.accept(); // before answering: HASH(3) chains from message 2's last block
  exchange.flight.received(datagram); // only now: a forged copy must not stop us answering a repeat
  ctx.heard(sa);
  ctx.peerMoved(sa, local, remote);
  if (exchange.state === 'QM_I1') onMessage2(ctx, sa, exchange, opened.payloads);
  else onMessage3(ctx, sa, exchange);
}

/** A quick mode ends in error: authenticated errors fail the negotiation, unverified ones change nothing. */
export function failQuickMode(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  messageId: number,
  error: ExchangeError | DecodeError,
): void {
  const exchange = sa.exchanges?.get(messageId);
  if (error instanceof UnverifiedMessage) {
    ctx.logUnauthenticated(
      'warn',
      'quick-mode-unverified',
      `quick mode ${hexId(messageId)} from ${formatEndpoint(sa.remote)} ignored: ${failureOf(error.error).reason}`,
    );
    if (!exchange) sa.protection?.forget(messageId);
    return;
  }
  const failure = failureOf(error);
  ctx.log('warn', `quick mode ${hexId(messageId)}: ${failure.reason}`, sa, exchange?.connection.name);
  if (exchange) {
    ctx.childFailed(exchange.negotiation, failure);
    dropExchange(ctx, sa, exchange);
  } else {
    const concerned = error instanceof ExchangeError && error.connections.length ? error.connections : [];
    ctx.refused(concerned.length ? concerned : [sa.connection!.name], failure, 'child');
    sa.protection?.forget(messageId);
  }
  const notify = notifyOf(error);
  if (notify && notify !== NotifyType.INVALID_HASH_INFORMATION)
    sendInformational(ctx, sa, isakmpNotify(sa, notify));
}

/**
 * The peer answered our quick mode with an error notify (NO_PROPOSAL_CHOSEN...) in a protected
 * informational exchange: the negotiation ends now with the peer's reason, instead of
 * retransmitting into silence until "no answer". The notify carries the ISAKMP SA's cookies, not
 * a message ID (what ike-node and others send), so it ends every quick mode of ours still waiting
 * for message 2; a rekey among them is tried again later (the core's retry).
 */
export function quickModeRefused(ctx: ProtocolContext, sa: IsakmpSa, notifyType: number): void {
  const waiting = [...(sa.exchanges?.values() ?? [])].filter(
    (exchange) => exchange.role === 'initiator' && exchange.state === 'QM_I1',
  );
  for (const exchange of waiting) {
    const reason = `the peer refused quick mode ${hexId(exchange.messageId)}: ${notifyName(notifyType)}`;
    ctx.log('warn', reason, sa, exchange.connection.name);
    ctx.childFailed(exchange.negotiation, { cause: causeOfNotify(notifyType), reason });
    dropExchange(ctx, sa, exchange);
  }
}

/** A quick mode timer: retransmission while waiting, then giving up; or a finished exchange's end. */
export function quickModeTimeout(ctx: ProtocolContext, sa: IsakmpSa, messageId: number): void {
  const exchange = sa.exchanges?.get(messageId);
  if (!exchange) return;
  if (exchange.doneAt !== undefined) {
    if (ctx.now >= exchange.doneAt + DONE_EXCHANGE_LINGER) dropExchange(ctx, sa, exchange);
    else ctx.arm(sa, exchange.flight.timer, exchange.doneAt + DONE_EXCHANGE_LINGER);
    return;
  }
  const verdict = exchange.flight.poll(ctx.now);
  if (verdict === 'resend' && exchange.flight.lastSent) {
    ctx.log(
      'debug',
      `retransmitting quick mode message (${exchange.flight.resends})`,
      sa,
      exchange.connection.name,
    );
    ctx.event({ type: 'retransmit', ikeSa: sa.id, connection: exchange.connection.name });
    sa.transmit(ctx, exchange.flight.lastSent);
  } else if (verdict === 'give-up') {
    const reason = `no answer from ${formatEndpoint(sa.remote)} in quick mode`;
    ctx.log('warn', reason, sa, exchange.connection.name);
    ctx.childFailed(exchange.negotiation, { cause: 'timeout', reason });
    dropExchange(ctx, sa, exchange);
    return;
  }
  if (exchange.flight.dueAt !== undefined) ctx.arm(sa, exchange.flight.timer, exchange.flight.dueAt);
}

/** Forgets an exchange; one that never finished takes its responder's inbound SA along (the core does). */
export function dropExchange(ctx: ProtocolContext, sa: IsakmpSa, exchange: QuickModeExchange): void {
  sa.exchanges?.delete(exchange.messageId);
  if (sa.exchanges?.size === 0) sa.exchanges = undefined;
  sa.protection?.forget(exchange.messageId);
  ctx.disarm(sa, exchange.flight.timer);
  ctx.endChild(exchange.negotiation);
}

// ---------------------------------------------------------------------------------------------
// Pieces

/** Adds an exchange, dropping the oldest finished ones beyond the bound. */
function addExchange(ctx: ProtocolContext, sa: IsakmpSa, exchange: QuickModeExchange): void {
  const exchanges = (sa.exchanges ??= new Map());
  exchanges.set(exchange.messageId, exchange);
  if (exchanges.size <= MAX_LINGERING) return;
  for (const other of [...exchanges.values()]) {
    if (exchanges.size <= MAX_LINGERING) break;
    if (other.state === 'DONE') dropExchange(ctx, sa, other);
  }
}

/**
 * The initiator's exchange is complete (message 3 sent): it lingers to send message 3 again for
 * a repeated message 2, then goes. It keeps the flight, not the keys, nor what points into the
 * datagram of message 2.
 */
function done(ctx: ProtocolContext, sa: IsakmpSa, exchange: QuickModeExchange): void {
  exchange.flight.linger();
  exchange.state = 'DONE';
  exchange.doneAt = ctx.now;
  exchange.dh = exchange.gqm = exchange.Nr_b = exchange.ids = undefined;
  ctx.arm(sa, exchange.flight.timer, exchange.doneAt + DONE_EXCHANGE_LINGER);
}

function selectorsFit(connection: Connection, localTs: TrafficSelector, remoteTs: TrafficSelector): boolean {
  const locals = connection.local.trafficSelectors;
  const peers = connection.peer.trafficSelectors;
  const localOk = locals.length === 0 || locals.some((ts) => contains(ts, localTs));
  // No configured peer selectors: a dynamic peer ('any'), whatever address it has.
  const remoteOk = peers.length === 0 || peers.some((ts) => contains(ts, remoteTs));
  return localOk && remoteOk;
}

/** Transport mode through a NAT: the policy must name the address the kernel actually sees. */
function substitute(ts: TrafficSelector, apply: boolean, address: string): TrafficSelector {
  if (!apply) return ts;
  const bytes = parseAddress(address);
  return { ...ts, start: bytes, end: bytes };
}

function offeredSecondsExceed(offer: Phase2Offer, ipsec: Connection['ipsec']): boolean {
  return (offer.lifetime.seconds ?? DEFAULT_PHASE2_LIFETIME) > ipsec.lifetime.seconds;
}

/** PFS: our key pair (initiator, before message 1), or the shared secret of quick mode. */
function pfs(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  exchange: QuickModeExchange,
  peerPublic: Uint8Array | undefined,
  then: () => void,
): void {
  const group = (exchange.suite ?? exchange.offered[0]!).dh!.name;
  exchange.computing = true;
  const finish = () => {
    exchange.computing = false;
  };
  computeDh(
    ctx,
    sa,
    { group, ...(exchange.dh && madeBefore(exchange.dh)), ...(peerPublic && { peerPublic }) },
    (error) => {
      finish();
      failQuickMode(ctx, sa, exchange.messageId, error);
    },
    (result) => {
      finish();
      exchange.dh = result;
      if (result.sharedSecret) exchange.gqm = result.sharedSecret;
      then();
    },
  );
}

/** HASH(1) = prf(SKEYID_a, M-ID | rest); HASH(2) = prf(SKEYID_a, M-ID | Ni_b | rest). */
function verifyHash(
  sa: IsakmpSa,
  payloads: readonly Payload[],
  chain: Uint8Array,
  prefix: readonly Uint8Array[],
  name: string,
  messageId: number,
): void {
  const hash = payloads[0];
  if (hash?.kind !== 'hash')
    throw new ExchangeError(`${name} is not the first payload`, NotifyType.INVALID_HASH_INFORMATION);
  const rest = chain.subarray(4 + hash.data.length);
  const expected = sa.prf!.compute(sa.keys!.SKEYID_a, u32be(messageId), ...prefix, rest);
  if (!equalBytes(expected, hash.data))
    throw new ExchangeError(`${name} mismatch`, NotifyType.INVALID_HASH_INFORMATION);
}

/** HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b). */
function verifyHash3(sa: IsakmpSa, exchange: QuickModeExchange, payloads: readonly Payload[]): void {
  const hash = find(payloads, 'hash');
  const expected = sa.prf!.compute(
    sa.keys!.SKEYID_a,
    Uint8Array.of(0),
    u32be(exchange.messageId),
    exchange.Ni_b,
    exchange.Nr_b!,
  );
  if (!hash || !equalBytes(hash.data, expected))
    throw new ExchangeError('HASH(3) mismatch', NotifyType.INVALID_HASH_INFORMATION);
}

function sendProtected(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  exchange: QuickModeExchange,
  payloads: readonly Payload[],
  prefix: readonly Uint8Array[],
  awaitReply: boolean,
): void {
  const rest = encodePayloads(payloads);
  const hash = sa.prf!.compute(sa.keys!.SKEYID_a, u32be(exchange.messageId), ...prefix, rest);
  sa.send(ctx, ExchangeType.QUICK_MODE, exchange.messageId, [{ kind: 'hash', data: hash }, ...payloads], {
    encrypt: true,
    flight: exchange.flight,
    awaitReply,
  });
}

function childSa(ctx: ProtocolContext, sa: IsakmpSa, exchange: QuickModeExchange): ChildSa {
  const suite = exchange.suite!;
  const encryption = encryptionOf(ctx.crypto, suite.encr);
  const integrity = suite.integ ? integrityOf(ctx.crypto, suite.integ) : undefined;
  const length = encryption.keyMaterialLength + (integrity?.keyLength ?? 0);
  const keymat = (spi: Uint8Array) =>
    quickModeKeymat(
      sa.prf!,
      sa.keys!.SKEYID_d,
      {
        ...(exchange.gqm && { gqm: exchange.gqm }),
        protocol: ProtocolId.IPSEC_ESP,
        spi,
        Ni_b: exchange.Ni_b,
        Nr_b: exchange.Nr_b!,
      },
      length,
    );
  const inbound = keymat(exchange.spiIn);
  const outbound = keymat(exchange.spiOut!);
  const encr = encryption.keyMaterialLength;
  const keys = sealKeys('ChildSaKeys', {
    encrIn: inbound.slice(0, encr),
    integIn: inbound.slice(encr),
    encrOut: outbound.slice(0, encr),
    integOut: outbound.slice(encr),
  });
  return ctx.buildChild(exchange.negotiation, {
    mode: exchange.mode,
    encapsulation: exchange.udp,
    spiIn: readU32(exchange.spiIn),
    spiOut: readU32(exchange.spiOut!),
    localTs: [exchange.localTs],
    remoteTs: [exchange.remoteTs],
    suite,
    keys,
    lifetime: {
      seconds: exchange.lifetime.seconds ?? DEFAULT_PHASE2_LIFETIME,
      ...(exchange.lifetime.kilobytes !== undefined && { kilobytes: exchange.lifetime.kilobytes }),
    },
  });
}

function readU32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
}

/**
 * Whether the client IDs of quick mode message 2 answer ours: absent, or the same. In
 * UDP-encapsulated transport mode a responder may put the addresses it sees into the host IDs
 * (strongSwan answers with the NAT's address for ours, RFC 3947 section 5.2 leaves the fix-up to
 * NAT-OA): then only the ID type, protocol and port must stay, and our own selectors still apply
 * (our kernel sees our own address).
 */
export function responderIdsAcceptable(
  sent: { readonly ci: IdPayload; readonly cr: IdPayload },
  received: readonly IdPayload[],
  natTransport: boolean,
): boolean {
  if (received.length !== 2) return true;
  const same = natTransport ? sameIdButHostAddress : sameId;
  return same(received[0]!, sent.ci) && same(received[1]!, sent.cr);
}

function sameIdButHostAddress(a: IdPayload, b: IdPayload): boolean {
  const host = a.idType === IdType.ID_IPV4_ADDR || a.idType === IdType.ID_IPV6_ADDR;
  return (
    sameId(a, b) || (host && a.idType === b.idType && a.protocolId === b.protocolId && a.port === b.port)
  );
}

function sameId(a: IdPayload, b: IdPayload): boolean {
  return (
    a.idType === b.idType && a.protocolId === b.protocolId && a.port === b.port && equalBytes(a.data, b.data)
  );
}

function hexId(id: number): string {
  return id.toString(16).padStart(8, '0');
}
