import { parseAddress } from '../core/address.js';
import { type Connection, type IpsecMode, policyLabel } from '../core/connection.js';
import { schedule } from '../core/lifetime.js';
import { explainMismatch, formatSuite, sameSuite, selectSuite, type Suite } from '../core/proposal.js';
import { type ChildSa, type Role, udpEncapsulated } from '../core/sa.js';
import {
  contains,
  formatTrafficSelector,
  parseTrafficSelector,
  type TrafficSelector,
} from '../core/traffic-selector.js';
import { KeyExchange } from '../crypto/dh.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import { quickModeKeymat } from '../crypto/kdf-ikev1.js';
import { sealKeys } from '../crypto/secret.js';
import { Encryption, Integrity } from '../crypto/transforms.js';
import { equalBytes, u32be } from '../wire/bytes.js';
import {
  type DecodedMessage,
  decodeAttributes,
  encodeAttributes,
  encodePayloads,
  type Payload,
} from './codec.js';
import { ExchangeType, IdType, NotifyType, ProtocolId } from './constants.js';
import { ExchangeError } from './errors.js';
import { Flight } from './flight.js';
import { idFromTrafficSelector, trafficSelectorFromId } from './identification.js';
import { find, findAll, type Host, type IsakmpSa } from './isakmp-sa.js';
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

type IdPayload = Extract<Payload, { kind: 'id' }>;

export interface QuickModeExchange {
  readonly messageId: number;
  readonly role: Role;
  readonly flight: Flight;
  connection: Connection;
  state: 'QM_I1' | 'QM_R1' | 'DONE';
  readonly spiIn: Uint8Array;
  spiOut?: Uint8Array;
  Ni_b: Uint8Array;
  Nr_b?: Uint8Array;
  ke?: KeyExchange;
  gqm?: Uint8Array;
  offered: readonly Suite[];
  suite?: Suite;
  /** Proposed (initiator) or chosen from the offer (responder). */
  mode: IpsecMode;
  udp: boolean;
  localTs: TrafficSelector;
  remoteTs: TrafficSelector;
  ids?: { readonly ci: IdPayload; readonly cr: IdPayload };
  lifetime: Lifetimes;
  readonly rekeyOf?: number;
  doneAt?: number;
  /** The responder's child SA, built when it answers; its inbound SA is installed from then on. */
  child?: ChildSa;
  /** Why the kernel refused that inbound SA: message 3 then ends in a Delete, not an install. */
  refused?: string;
}

// ---------------------------------------------------------------------------------------------
// Initiator

export function startQuickMode(
  host: Host,
  sa: IsakmpSa,
  connection: Connection,
  localTs: TrafficSelector,
  remoteTs: TrafficSelector,
  rekeyOf?: number,
): QuickModeExchange {
  const { ipsec } = connection;
  const udp = udpEncapsulated(sa.nat) && sa.natT !== undefined;
  const exchange: QuickModeExchange = {
    messageId: newMessageId(host, sa),
    role: 'initiator',
    flight: new Flight(),
    connection,
    state: 'QM_I1',
    spiIn: newSpi(host, sa),
    Ni_b: host.crypto.randomBytes(NONCE_LENGTH),
    offered: ipsec.proposals.map((suite) => ({ ...suite, ...(ipsec.pfs && { dh: ipsec.pfs }) })),
    mode: ipsec.mode,
    udp,
    localTs,
    remoteTs,
    ids: { ci: idFromTrafficSelector(localTs), cr: idFromTrafficSelector(remoteTs) },
    lifetime: {
      seconds: ipsec.lifetime.seconds,
      ...(ipsec.lifetime.kilobytes && { kilobytes: ipsec.lifetime.kilobytes }),
    },
    ...(rekeyOf !== undefined && { rekeyOf }),
  };
  if (ipsec.pfs) exchange.ke = new KeyExchange(host.crypto, ipsec.pfs);
  const payloads: Payload[] = [
    phase2Sa(exchange.offered, {
      spi: exchange.spiIn,
      encapsulation: encapsulationMode(ipsec.mode, udp ? sa.natT : undefined),
      lifetime: exchange.lifetime,
    }),
    { kind: 'nonce', data: exchange.Ni_b },
  ];
  if (exchange.ke) payloads.push({ kind: 'ke', data: exchange.ke.publicKey });
  payloads.push(exchange.ids!.ci, exchange.ids!.cr);
  if (udp && ipsec.mode === 'transport') payloads.push(...natOaPayloads(sa, 'initiator'));
  sa.exchanges.set(exchange.messageId, exchange);
  negotiationStarted(host, sa, connection);
  sendProtected(host, sa, exchange, payloads, [], true);
  host.log(
    'info',
    `quick mode ${hexId(exchange.messageId)}: ${formatTrafficSelector(localTs)} === ${formatTrafficSelector(remoteTs)}` +
      ` ${ipsec.mode}${udp ? ' UDP-encapsulated' : ''}, offering ${exchange.offered.map(formatSuite).join(', ')}`,
    sa,
    connection.name,
  );
  return exchange;
}

function onMessage2(
  host: Host,
  sa: IsakmpSa,
  exchange: QuickModeExchange,
  payloads: readonly Payload[],
  chain: Uint8Array,
): void {
  verifyHash(sa, payloads, chain, [exchange.Ni_b], 'HASH(2)', exchange.messageId);
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
    throw new ExchangeError('responder changed the client IDs', NotifyType.INVALID_ID_INFORMATION);
  exchange.suite = chosen.suite;
  exchange.spiOut = chosen.spi;
  exchange.Nr_b = nonce.data;
  pfsSecret(exchange, find(payloads, 'ke'));
  for (const notify of findAll(payloads, 'notify')) {
    if (notify.notifyType === NotifyType.RESPONDER_LIFETIME) {
      const adopted = readLifetimes(decodeAttributes(notify.data));
      exchange.lifetime = { ...exchange.lifetime, ...adopted };
      host.log('info', `responder lifetime: ${JSON.stringify(adopted)}`, sa, exchange.connection.name);
    }
  }
  const hash3 = sa.prf!.compute(
    sa.keys!.SKEYID_a,
    Uint8Array.of(0),
    u32be(exchange.messageId),
    exchange.Ni_b,
    exchange.Nr_b,
  );
  exchange.state = 'DONE';
  exchange.doneAt = host.now;
  sa.send(host, ExchangeType.QUICK_MODE, exchange.messageId, [{ kind: 'hash', data: hash3 }], {
    encrypt: true,
    flight: exchange.flight,
    awaitReply: false,
  });
  host.installChild(childSa(host, sa, exchange), exchange);
}

// ---------------------------------------------------------------------------------------------
// Responder

function negotiationStarted(host: Host, sa: IsakmpSa, connection: Connection): void {
  host.emit({
    type: 'event',
    event: { type: 'negotiation-started', kind: 'child', ikeSa: sa.id, connection: connection.name },
  });
}

export function respondToQuickMode(host: Host, sa: IsakmpSa, message: DecodedMessage): void {
  const messageId = message.header.messageId;
  const { payloads, chain, accept } = sa.open(message);
  const first = find(payloads, 'hash');
  if (!first) throw new ExchangeError('quick mode without HASH(1)', NotifyType.PAYLOAD_MALFORMED);
  verifyHash(sa, payloads, chain, [], 'HASH(1)', messageId);
  accept();
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
  for (const connection of quickModeCandidates(host, sa)) {
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
    answer(
      host,
      sa,
      messageId,
      connection,
      usable[index]!,
      nonce.data,
      find(payloads, 'ke'),
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
  );
}

function answer(
  host: Host,
  sa: IsakmpSa,
  messageId: number,
  connection: Connection,
  offer: Phase2Offer,
  Ni_b: Uint8Array,
  ke: Extract<Payload, { kind: 'ke' }> | undefined,
  localTs: TrafficSelector,
  remoteTs: TrafficSelector,
  ids: readonly IdPayload[],
  saPayload: Extract<Payload, { kind: 'sa' }>,
): void {
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
    flight: new Flight(),
    connection,
    state: 'QM_R1',
    spiIn: newSpi(host, sa),
    spiOut: offer.spi,
    Ni_b,
    Nr_b: host.crypto.randomBytes(NONCE_LENGTH),
    offered: [offer.suite],
    suite: offer.suite,
    mode: decodeEncapsulationMode(offer.encapsulation)!.mode,
    udp: decodeEncapsulationMode(offer.encapsulation)!.udp,
    localTs,
    remoteTs,
    ...(ids.length === 2 && { ids: { ci: ids[0]!, cr: ids[1]! } }),
    lifetime,
  };
  if (offer.suite.dh) {
    exchange.ke = new KeyExchange(host.crypto, offer.suite.dh);
    pfsSecret(exchange, ke);
  } else if (ke) {
    throw new ExchangeError('KE payload without a PFS group', NotifyType.INVALID_KEY_INFORMATION);
  }
  const proposal = saPayload.proposals.find((p) => p.number === offer.proposalNumber)!;
  const payloads: Payload[] = [
    { ...saPayload, proposals: [{ ...proposal, spi: exchange.spiIn, transforms: [offer.transform] }] },
    { kind: 'nonce', data: exchange.Nr_b! },
  ];
  if (exchange.ke) payloads.push({ kind: 'ke', data: exchange.ke.publicKey });
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
  sa.exchanges.set(messageId, exchange);
  negotiationStarted(host, sa, connection);
  exchange.child = childSa(host, sa, exchange);
  host.emit({ type: 'install-inbound', child: exchange.child });
  sendProtected(host, sa, exchange, payloads, [Ni_b], true);
  host.log(
    'info',
    `quick mode ${hexId(messageId)} for '${connection.name}': ${formatTrafficSelector(localTs)} === ` +
      `${formatTrafficSelector(remoteTs)} ${exchange.mode}${exchange.udp ? ' UDP-encapsulated' : ''}, chose ${formatSuite(offer.suite)}`,
    sa,
    connection.name,
  );
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

function onMessage3(
  host: Host,
  sa: IsakmpSa,
  exchange: QuickModeExchange,
  payloads: readonly Payload[],
): void {
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
  exchange.flight.stop();
  exchange.state = 'DONE';
  exchange.doneAt = host.now;
  // The endpoints of now: a NAT mapping may have moved since message 2 (the kernel then installs
  // the inbound SA again with them).
  host.installChild({ ...exchange.child!, local: sa.local, remote: sa.remote }, exchange);
}

/** Handles a quick mode message of an exchange we know (messages 2 and 3). */
export function continueQuickMode(
  host: Host,
  sa: IsakmpSa,
  exchange: QuickModeExchange,
  message: DecodedMessage,
): void {
  if (exchange.state === 'DONE') return;
  const { payloads, chain, accept } = sa.open(message);
  accept(); // before answering: HASH(3) chains from message 2's last block
  if (exchange.state === 'QM_I1') onMessage2(host, sa, exchange, payloads, chain);
  else onMessage3(host, sa, exchange, payloads);
}

// ---------------------------------------------------------------------------------------------
// Pieces

/**
 * Connections to the same peer with the same key may carry their subnets over one ISAKMP SA:
 * main mode picks the key by address, so one SA authenticates them all.
 */
export function sharesIsakmpSa(a: Connection, b: Connection): boolean {
  return (
    a.ike.version === 1 &&
    b.ike.version === 1 &&
    a.peer.address === b.peer.address &&
    a.local.address === b.local.address &&
    equalBytes(a.psk, b.psk)
  );
}

function quickModeCandidates(host: Host, sa: IsakmpSa): Connection[] {
  const own = sa.connection!;
  return [own, ...host.connections.filter((c) => c !== own && sharesIsakmpSa(c, own))];
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

function pfsSecret(exchange: QuickModeExchange, ke: Extract<Payload, { kind: 'ke' }> | undefined): void {
  if (!exchange.ke) return;
  if (!ke) throw new ExchangeError('PFS negotiated but no KE payload', NotifyType.INVALID_KEY_INFORMATION);
  try {
    exchange.gqm = exchange.ke.computeSharedSecret(ke.data);
  } catch (error) {
    if (error instanceof InvalidPublicValueError)
      throw new ExchangeError(error.message, NotifyType.INVALID_KEY_INFORMATION);
    throw error;
  }
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

function sendProtected(
  host: Host,
  sa: IsakmpSa,
  exchange: QuickModeExchange,
  payloads: readonly Payload[],
  prefix: readonly Uint8Array[],
  awaitReply: boolean,
): void {
  const rest = encodePayloads(payloads);
  const hash = sa.prf!.compute(sa.keys!.SKEYID_a, u32be(exchange.messageId), ...prefix, rest);
  sa.send(host, ExchangeType.QUICK_MODE, exchange.messageId, [{ kind: 'hash', data: hash }, ...payloads], {
    encrypt: true,
    flight: exchange.flight,
    awaitReply,
  });
}

function childSa(host: Host, sa: IsakmpSa, exchange: QuickModeExchange): ChildSa {
  const suite = exchange.suite!;
  const encryption = new Encryption(host.crypto, suite.encr);
  const integrity = suite.integ ? new Integrity(host.crypto, suite.integ) : undefined;
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
  const split = (material: Uint8Array) => ({
    encr: material.slice(0, encryption.keyMaterialLength),
    integ: material.slice(encryption.keyMaterialLength),
  });
  const keys = sealKeys('ChildSaKeys', {
    encrIn: split(inbound).encr,
    integIn: split(inbound).integ,
    encrOut: split(outbound).encr,
    integOut: split(outbound).integ,
  });
  const { ipsec } = exchange.connection;
  const seconds = exchange.lifetime.seconds ?? DEFAULT_PHASE2_LIFETIME;
  const { rekeyAt, expiresAt } = schedule(host.now, ipsec.lifetime, () => host.random(), seconds);
  return {
    id: host.nextId(),
    connection: exchange.connection.name,
    ikeSaId: sa.id,
    protocol: 'esp',
    mode: exchange.mode,
    encapsulation: exchange.udp,
    local: sa.local,
    remote: sa.remote,
    spiIn: new DataView(exchange.spiIn.buffer, exchange.spiIn.byteOffset).getUint32(0),
    spiOut: new DataView(exchange.spiOut!.buffer, exchange.spiOut!.byteOffset).getUint32(0),
    localTs: [exchange.localTs],
    remoteTs: [exchange.remoteTs],
    suite,
    keys,
    lifetime: {
      seconds,
      ...(exchange.lifetime.kilobytes !== undefined && { kilobytes: exchange.lifetime.kilobytes }),
    },
    installedAt: host.now,
    rekeyAt,
    expiresAt,
  };
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

/** The kernel backend's SPI when it reserves them (XFRM_MSG_ALLOCSPI, SADB_GETSPI), else a random one. */
function newSpi(host: Host, sa: IsakmpSa): Uint8Array {
  try {
    const allocated = host.allocateSpi?.(sa.local.address, sa.remote.address);
    if (allocated !== undefined) return u32be(allocated);
  } catch (error) {
    // The install adds the SA outright then (the backends fall back from UPDATE to ADD).
    host.log('warn', `the kernel reserved no SPI (${(error as Error).message}): using a random one`, sa);
  }
  for (;;) {
    const spi = host.crypto.randomBytes(4);
    // SPIs 1-255 are reserved by IANA (RFC 4303 section 2.1); 0 is invalid.
    if (spi[0]! | spi[1]! | spi[2]!) return spi;
  }
}

export function newMessageId(host: Host, sa: IsakmpSa): number {
  for (;;) {
    const id = new DataView(host.crypto.randomBytes(4).buffer).getUint32(0);
    if (id !== 0 && !sa.exchanges.has(id)) return id;
  }
}

function hexId(id: number): string {
  return id.toString(16).padStart(8, '0');
}
