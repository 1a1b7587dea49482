import { type Connection, type IpsecMode, policyLabel } from '../core/connection.js';
import type { ChildNegotiation } from '../core/ike-sa.js';
import type { Suite } from '../core/proposal.js';
import type { ChildSaSpec, ProtocolContext } from '../core/protocol.js';
import { udpEncapsulated } from '../core/sa.js';
import { intersect, parseTrafficSelector, type TrafficSelector } from '../core/traffic-selector.js';
import type { DhAlgorithm } from '../crypto/registry.js';
import { readU32be, u32be } from '../wire/bytes.js';
import { findNotify, notify, type Payload, type Proposal } from './codec.js';
import { isErrorNotify, notifyName, NotifyType, TransformType } from './constants.js';
import { Ikev2Error } from './errors.js';
import type { Ikev2Sa } from './ike-sa.js';
import { childKeys } from './keys.js';
import { choose, chosenSuite, noProposalReason, offerProposals, policySets } from './proposals.js';

/**
 * The parts of a child SA negotiation that IKE_AUTH and CREATE_CHILD_SA share (RFC 7296 sections
 * 1.3, 2.9, 2.17): the ESP proposals, the traffic selectors and their narrowing, the mode
 * notifies, and the keys.
 */

/** Our ESP proposals with `spi`; `pfs` adds its group (CREATE_CHILD_SA with KE). */
export function espOffer(connection: Connection, spi: number, pfs?: DhAlgorithm): Payload {
  return {
    kind: 'sa',
    proposals: offerProposals('esp', policySets(connection.ipsec), u32be(spi), pfs ? [pfs] : undefined),
  };
}

/** The payloads that ask for a child SA: TSi/TSr (and USE_TRANSPORT_MODE, no TFC padding). */
export function childRequestPayloads(
  connection: Connection,
  localTs: TrafficSelector,
  remoteTs: TrafficSelector,
): Payload[] {
  return [
    ...(connection.ipsec.mode === 'transport' ? [notify(NotifyType.USE_TRANSPORT_MODE)] : []),
    notify(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED),
    { kind: 'ts', role: 'i', selectors: [localTs] },
    { kind: 'ts', role: 'r', selectors: [remoteTs] },
  ];
}

/** A connection's default selectors: its subnets, or the IKE SA's own addresses (transport mode). */
export function defaultSelectors(
  connection: Connection,
  sa: Ikev2Sa,
): { localTs: TrafficSelector; remoteTs: TrafficSelector } {
  return {
    localTs: connection.local.trafficSelectors[0] ?? parseTrafficSelector(sa.local.address),
    remoteTs: connection.peer.trafficSelectors[0] ?? parseTrafficSelector(sa.remote.address),
  };
}

export interface ChildAnswer {
  readonly suite: Suite;
  readonly proposal: Proposal;
  readonly mode: IpsecMode;
  /** Narrowed: TSi (the initiator's side, ours as initiator) and TSr. */
  readonly tsi: TrafficSelector[];
  readonly tsr: TrafficSelector[];
  readonly spiOut: number;
}

/**
 * A responder's answer to a child SA request: the ESP proposal it takes, the mode, and the selectors narrowed to what its connection
 * allows (section 2.9). Throws Ikev2Error NO_PROPOSAL_CHOSEN or TS_UNACCEPTABLE. The first child
 * SA, in IKE_AUTH, has no Diffie-Hellman of its own (section 1.2): groups are left out on both sides
 * there. In CREATE_CHILD_SA our PFS policy holds: a connection that requires a group refuses a
 * request without one, as IKEv1's quick mode does.
 */
export function answerChild(
  connection: Connection,
  sa: Ikev2Sa,
  request: readonly Payload[],
  spi: number,
  inIkeAuth: boolean,
): ChildAnswer {
  const saPayload = request.find((p): p is Extract<Payload, { kind: 'sa' }> => p.kind === 'sa');
  const tsi = request.find((p): p is Extract<Payload, { kind: 'ts' }> => p.kind === 'ts' && p.role === 'i');
  const tsr = request.find((p): p is Extract<Payload, { kind: 'ts' }> => p.kind === 'ts' && p.role === 'r');
  if (!saPayload || !tsi || !tsr)
    throw new Ikev2Error('a child SA request without SA, TSi or TSr', NotifyType.INVALID_SYNTAX);
  const { ipsec } = connection;
  const offered = inIkeAuth ? saPayload.proposals.map(withoutDh) : saPayload.proposals;
  const ours = (inIkeAuth ? ['none' as const] : (ipsec.acceptPfs ?? [ipsec.pfs ?? 'none'])).flatMap((pfs) =>
    ipsec.proposals.map((suite) => (pfs === 'none' ? suite : { ...suite, dh: pfs })),
  );
  const chosen = choose('esp', ours, offered, u32be(spi));
  if (!chosen)
    throw new Ikev2Error(
      `child SA: ${noProposalReason('esp', [{ what: policyLabel('ipsecPolicy', ipsec.name, connection.name), suites: ours }], offered)}`,
      NotifyType.NO_PROPOSAL_CHOSEN,
      'ours',
      'no-proposal',
    );
  const modes = ipsec.acceptModes ?? [ipsec.mode];
  const transport = !!findNotify(request, NotifyType.USE_TRANSPORT_MODE);
  const mode: IpsecMode = transport && modes.includes('transport') ? 'transport' : 'tunnel';
  if (!modes.includes(mode))
    throw new Ikev2Error(
      `'${connection.name}' does not do ${mode} mode`,
      NotifyType.NO_PROPOSAL_CHOSEN,
      'ours',
      'no-proposal',
    );
  // Ours as the responder: TSr is our side, TSi the peer's.
  const local = connection.local.trafficSelectors.length
    ? connection.local.trafficSelectors
    : [parseTrafficSelector(sa.local.address)];
  const remote = connection.peer.trafficSelectors;
  const narrowedR = narrow(tsr.selectors, local);
  // No configured peer selectors: a client ("any" peer) gets what it proposes.
  const narrowedI = remote.length ? narrow(tsi.selectors, remote) : [...tsi.selectors];
  if (!narrowedR.length || !narrowedI.length)
    throw new Ikev2Error(
      `the peer's selectors do not fit '${connection.name}'`,
      NotifyType.TS_UNACCEPTABLE,
      'ours',
      'selectors',
    );
  const spiOut = saPayload.proposals.find((p) => p.number === chosen.proposal.number)!.spi;
  if (spiOut.length !== 4)
    throw new Ikev2Error(`an ESP proposal with a ${spiOut.length}-byte SPI`, NotifyType.INVALID_SYNTAX);
  return {
    suite: chosen.suite,
    proposal: chosen.proposal,
    mode,
    tsi: narrowedI,
    tsr: narrowedR,
    spiOut: readU32be(spiOut),
  };
}

/**
 * The responder's answer among the connections the IKE SA carries (its own first, then siblings
 * that share it, ProtocolContext.siblings): the first whose proposals, mode and selectors fit.
 * When none does, the refusal of the first whose selectors fit says why (else the first's).
 */
export function answerAmong(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  request: readonly Payload[],
  spi: number,
  inIkeAuth: boolean,
): { connection: Connection; answer: ChildAnswer } {
  let refusal: Ikev2Error | undefined;
  for (const connection of ctx.siblings(sa.connection!)) {
    try {
      return { connection, answer: answerChild(connection, sa, request, spi, inIkeAuth) };
    } catch (error) {
      if (!(error instanceof Ikev2Error)) throw error;
      if (
        !refusal ||
        (refusal.notify === NotifyType.TS_UNACCEPTABLE && error.notify !== NotifyType.TS_UNACCEPTABLE)
      )
        refusal = error;
    }
  }
  throw refusal!;
}

function withoutDh(proposal: Proposal): Proposal {
  return { ...proposal, transforms: proposal.transforms.filter((t) => t.type !== TransformType.DH) };
}

/** Each offered selector cut down to the configured ones it overlaps (section 2.9). */
function narrow(
  offered: readonly TrafficSelector[],
  configured: readonly TrafficSelector[],
): TrafficSelector[] {
  const out: TrafficSelector[] = [];
  for (const theirs of offered)
    for (const ours of configured) {
      const overlap = intersect(theirs, ours);
      if (overlap) out.push(overlap);
    }
  return out;
}

export function answerPayloads(answer: ChildAnswer): Payload[] {
  return [
    ...(answer.mode === 'transport' ? [notify(NotifyType.USE_TRANSPORT_MODE)] : []),
    notify(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED),
    { kind: 'sa', proposals: [answer.proposal] },
    { kind: 'ts', role: 'i', selectors: answer.tsi },
    { kind: 'ts', role: 'r', selectors: answer.tsr },
  ];
}

/**
 * The initiator reads the responder's answer: the suite must be one we offered, the selectors
 * within ours (narrowed, perhaps), transport mode only if we asked.
 */
export function readChildAnswer(
  connection: Connection,
  response: readonly Payload[],
  asked: { localTs: TrafficSelector; remoteTs: TrafficSelector },
  pfs?: DhAlgorithm,
): ChildAnswer {
  for (const n of response)
    if (n.kind === 'notify' && isErrorNotify(n.notifyType))
      throw new Ikev2Error(
        `the peer refused the child SA: ${notifyName(n.notifyType)}`,
        n.notifyType,
        'peer',
      );
  const saPayload = response.find((p): p is Extract<Payload, { kind: 'sa' }> => p.kind === 'sa');
  const tsi = response.find((p): p is Extract<Payload, { kind: 'ts' }> => p.kind === 'ts' && p.role === 'i');
  const tsr = response.find((p): p is Extract<Payload, { kind: 'ts' }> => p.kind === 'ts' && p.role === 'r');
  if (!saPayload || !tsi || !tsr)
    throw new Ikev2Error('a child SA answer without SA, TSi or TSr', NotifyType.INVALID_SYNTAX);
  const ours = connection.ipsec.proposals.map((suite) => (pfs ? { ...suite, dh: pfs } : suite));
  const chosen = chosenSuite('esp', saPayload.proposals, ours);
  if (!chosen || chosen.spi.length !== 4)
    throw new Ikev2Error(
      'the responder chose an ESP proposal we did not offer',
      NotifyType.NO_PROPOSAL_CHOSEN,
    );
  const within = (list: readonly TrafficSelector[], mine: TrafficSelector) =>
    list.every((ts) => intersect(ts, mine) !== undefined);
  if (!within(tsi.selectors, asked.localTs) || !within(tsr.selectors, asked.remoteTs))
    throw new Ikev2Error(
      'the responder answered with selectors outside ours',
      NotifyType.TS_UNACCEPTABLE,
      'ours',
      'selectors',
    );
  const transport = !!findNotify(response, NotifyType.USE_TRANSPORT_MODE);
  if (transport && connection.ipsec.mode !== 'transport')
    throw new Ikev2Error('transport mode we did not ask for', NotifyType.NO_PROPOSAL_CHOSEN);
  // Section 1.3.1 lets a responder decline transport mode; a tunnel-mode SA is not what this
  // connection's policies are for, so it is refused rather than installed.
  if (!transport && connection.ipsec.mode === 'transport')
    throw new Ikev2Error(
      'the responder declined transport mode (no USE_TRANSPORT_MODE in its answer)',
      NotifyType.NO_PROPOSAL_CHOSEN,
    );
  return {
    suite: chosen.suite,
    proposal: saPayload.proposals[0]!,
    mode: transport ? 'transport' : 'tunnel',
    tsi: [...tsi.selectors],
    tsr: [...tsr.selectors],
    spiOut: readU32be(chosen.spi),
  };
}

/** The child SA spec of a negotiation: keys from SK_d and the exchange's nonces (and g^ir with PFS). */
export function childSpec(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  negotiation: ChildNegotiation,
  answer: ChildAnswer,
  exchange: {
    readonly spiIn: number;
    readonly Ni: Uint8Array;
    readonly Nr: Uint8Array;
    readonly initiator: boolean;
    readonly gir?: Uint8Array;
  },
): ChildSaSpec {
  const keys = childKeys(
    ctx.crypto,
    sa.prf!,
    sa.keys!.SK_d,
    answer.suite,
    { Ni: exchange.Ni, Nr: exchange.Nr },
    exchange.initiator,
    exchange.gir,
  );
  const { ipsec } = negotiation.connection;
  return {
    mode: answer.mode,
    encapsulation: udpEncapsulated(sa.nat),
    spiIn: exchange.spiIn,
    spiOut: answer.spiOut,
    // Ours first: as initiator TSi is ours, as responder TSr.
    localTs: exchange.initiator ? answer.tsi : answer.tsr,
    remoteTs: exchange.initiator ? answer.tsr : answer.tsi,
    suite: answer.suite,
    keys,
    lifetime: {
      seconds: ipsec.lifetime.seconds,
      ...(ipsec.lifetime.kilobytes && { kilobytes: ipsec.lifetime.kilobytes }),
    },
  };
}
