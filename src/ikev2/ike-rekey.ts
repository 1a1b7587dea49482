import { formatEndpoint } from '../core/endpoint.js';
import { formatSuite } from '../core/proposal.js';
import type { ProtocolContext } from '../core/protocol.js';
import { type DhJobResult, madeBefore } from '../crypto/dh-job.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import { type DhAlgorithm, findIkev2 } from '../crypto/registry.js';
import { u16be } from '../wire/bytes.js';
import { find, findAll, findNotify, notify, type Payload } from './codec.js';
import { ExchangeType, notifyName, NotifyType } from './constants.js';
import { oursIsRedundant } from './collision.js';
import { failureOf, Ikev2Error, isTyped } from './errors.js';
import { pairKey } from './ike-init.js';
import { Ikev2Sa, keyed, newIkeSpi, newNonce } from './ike-sa.js';
import { deriveIkeKeys } from './keys.js';
import { sendRequest, sendResponse } from './messages.js';
import { choose, chosenSuite, offerProposals, policySets } from './proposals.js';
import { sendDeleteIke } from './informational.js';
import { rekeyedTo } from './child-handover.js';

/**
 * Rekeying the IKE SA with CREATE_CHILD_SA (RFC 7296 sections 1.3.2 and 2.18), both roles:
 *
 *   request   HDR, SK {SA, Ni, KEi}
 *   response  HDR, SK {SA, Nr, KEr}
 *
 * Each SA payload carries its sender's SPI of the new IKE SA. SKEYSEED = prf(SK_d (old), g^ir
 * (new) | Ni | Nr); whoever started the rekey is the new SA's initiator. The core moves the child
 * SAs over, and the rekey's initiator deletes the old SA.
 *
 * When both ends start a rekey at once (section 2.8.2, collision.ts), the responder keeps the
 * SA it answered for aside (registered, not yet up) while a rekey of its own is in flight, and
 * decides once its own answer is in.
 */

/** Our IKE SA rekey in flight, and the peer's that crossed it. */
export interface IkeRekey {
  readonly Ni: Uint8Array;
  /** The peer's simultaneous rekey, answered: its new SA and that exchange's nonces. */
  collision?: { readonly next: Ikev2Sa; readonly Ni: Uint8Array; readonly Nr: Uint8Array };
}

/** Seconds before trying again when the peer answers TEMPORARY_FAILURE (section 2.25). */
export const IKE_REKEY_RETRY = 'ike-rekey-retry';
const RETRY_MIN = 2;
const RETRY_SPREAD = 3;

/** `carried`: the peer's crossing rekey, kept across our retry with another group. */
export function startIkeRekey(
  ctx: ProtocolContext,
  old: Ikev2Sa,
  group: DhAlgorithm = old.suite!.dh!,
  carried?: IkeRekey['collision'],
): void {
  if (old.state !== 'ESTABLISHED' || old.ikeRekey) return;
  const connection = old.connection!;
  const Ni = newNonce(ctx);
  const spiI = newIkeSpi(ctx);
  old.ikeRekey = carried ? { Ni, collision: carried } : { Ni };
  ctx.compute(old, { group: group.name }, (dh) => {
    if (dh instanceof Error) throw dh;
    const payloads: Payload[] = [
      { kind: 'sa', proposals: offerProposals('ike', policySets(connection.ike), spiI) },
      { kind: 'nonce', data: Ni },
      { kind: 'ke', group: group.ikev2, data: dh.publicKey },
    ];
    sendRequest(ctx, old, ExchangeType.CREATE_CHILD_SA, payloads, {
      onResponse: (response) => {
        try {
          onResponse(ctx, old, { spiI, Ni, dh, group }, response);
        } catch (error) {
          if (!isTyped(error)) throw error;
          ctx.log('warn', `IKE SA rekey failed: ${failureOf(error).reason}`, old);
          rekeyOver(ctx, old);
        }
      },
      onTimeout: () => {
        ctx.log('warn', `no answer from ${formatEndpoint(old.remote)} to the IKE SA rekey`, old);
        rekeyOver(ctx, old);
      },
    });
    ctx.log('info', `rekeying the IKE SA: CREATE_CHILD_SA with ${group.name}`, old);
  });
}

/** Our rekey ended without a new SA of ours: the peer's, if it crossed ours, takes over. */
function rekeyOver(ctx: ProtocolContext, old: Ikev2Sa): void {
  const collision = old.ikeRekey?.collision;
  old.ikeRekey = undefined;
  if (collision && !collision.next.deleted) rekeyedTo(ctx, old, collision.next);
}

function onResponse(
  ctx: ProtocolContext,
  old: Ikev2Sa,
  ours: { spiI: Uint8Array; Ni: Uint8Array; dh: DhJobResult; group: DhAlgorithm },
  response: readonly Payload[],
): void {
  const connection = old.connection!;
  const invalidKe = findNotify(response, NotifyType.INVALID_KE_PAYLOAD);
  if (invalidKe?.data.length === 2) {
    const wanted = findIkev2('dh', (invalidKe.data[0]! << 8) | invalidKe.data[1]!);
    const offered = connection.ike.proposals.some((suite) => suite.dh === wanted);
    if (!wanted || !offered || wanted === ours.group)
      throw new Ikev2Error('the peer wants a DH group we do not offer', NotifyType.NO_PROPOSAL_CHOSEN);
    ctx.log('info', `the peer wants ${wanted.name} for the IKE SA rekey: trying again with it`, old);
    const collision = old.ikeRekey?.collision;
    old.ikeRekey = undefined;
    startIkeRekey(ctx, old, wanted, collision);
    return;
  }
  if (findNotify(response, NotifyType.TEMPORARY_FAILURE)) {
    // Section 2.25: the peer is busy with another exchange on this SA; try again shortly.
    const delay = RETRY_MIN + ctx.random() * RETRY_SPREAD;
    ctx.log(
      'info',
      `the peer answered TEMPORARY_FAILURE: rekeying the IKE SA again in ${delay.toFixed(1)} s`,
      old,
    );
    rekeyOver(ctx, old);
    if (!old.deleted && old.state === 'ESTABLISHED') ctx.arm(old, IKE_REKEY_RETRY, ctx.now + delay);
    return;
  }
  for (const n of findAll(response, 'notify'))
    if (n.notifyType < 16384)
      throw new Ikev2Error(`the peer answered ${notifyName(n.notifyType)}`, n.notifyType, 'peer');
  const saPayload = find(response, 'sa');
  const nonce = find(response, 'nonce');
  const ke = find(response, 'ke');
  if (!saPayload || !nonce || !ke)
    throw new Ikev2Error('IKE SA rekey answer without SA, nonce or KE', NotifyType.INVALID_SYNTAX);
  const chosen = chosenSuite('ike', saPayload.proposals, connection.ike.proposals);
  if (!chosen || chosen.spi.length !== 8 || chosen.suite.dh !== ours.group || ke.group !== ours.group.ikev2)
    throw new Ikev2Error(
      'the peer chose a proposal or group we did not offer',
      NotifyType.NO_PROPOSAL_CHOSEN,
    );
  const Nr = nonce.data;
  ctx.compute(old, { group: ours.group.name, ...madeBefore(ours.dh), peerPublic: ke.data }, (result) => {
    if (result instanceof InvalidPublicValueError) {
      ctx.log('warn', `IKE SA rekey failed: ${result.message}`, old);
      rekeyOver(ctx, old);
      return;
    }
    if (result instanceof Error) throw result;
    const next = successor(ctx, old, 'initiator', ours.spiI, chosen.spi);
    rekeyed(ctx, old, next, chosen.suite, { gir: result.sharedSecret!, Ni: ours.Ni, Nr });
    const collision = old.ikeRekey?.collision;
    old.ikeRekey = undefined;
    if (
      collision &&
      !collision.next.deleted &&
      oursIsRedundant({ ours: { Ni: ours.Ni, Nr }, theirs: collision })
    ) {
      // Ours holds the lowest nonce: ours goes, theirs takes over (section 2.8.2).
      ctx.addSa(next);
      ctx.log('info', 'simultaneous IKE SA rekey: the peer’s new IKE SA wins, deleting ours', next);
      rekeyedTo(ctx, old, collision.next);
      sendDeleteIke(ctx, next, () => ctx.discardIke(next, 'redundant after a simultaneous rekey'));
      return;
    }
    // Ours wins: the peer deletes the one it started, kept aside here until it does.
    if (collision && !collision.next.deleted) ctx.setAside(collision.next);
    rekeyedTo(ctx, old, next);
    ctx.log('info', `IKE SA rekeyed: ${formatSuite(chosen.suite)}`, next);
  });
}

/** The new IKE SA, on the old one's addresses, NAT state and connection. */
function successor(
  ctx: ProtocolContext,
  old: Ikev2Sa,
  role: 'initiator' | 'responder',
  spiI: Uint8Array,
  spiR: Uint8Array,
): Ikev2Sa {
  const next = new Ikev2Sa(ctx.nextId(), role, spiI, old.local, old.remote, ctx.now);
  next.spiR.set(spiR);
  next.connection = old.connection;
  next.nat = old.nat;
  next.floated = old.floated;
  next.fragmentation = old.fragmentation;
  next.lifetimeSeconds = old.connection!.ike.lifetime.seconds;
  next.state = 'ESTABLISHED';
  ctx.index(next, pairKey(spiI, spiR));
  return next;
}

/** The new SA's keys: SKEYSEED from the old SA's SK_d (section 2.18). */
function rekeyed(
  ctx: ProtocolContext,
  old: Ikev2Sa,
  next: Ikev2Sa,
  suite: NonNullable<Ikev2Sa['suite']>,
  input: { gir: Uint8Array; Ni: Uint8Array; Nr: Uint8Array },
): void {
  next.suite = suite;
  const derived = deriveIkeKeys(
    ctx.crypto,
    suite,
    { ...input, SPIi: next.spiI, SPIr: next.spiR, rekeyOf: { prf: old.prf!, SK_d: old.keys!.SK_d } },
    next.role === 'initiator',
  );
  keyed(ctx, next, derived);
}

/** The peer's CREATE_CHILD_SA for the IKE SA itself (verified): answer it, or refuse with a notify. */
export function respondToIkeRekey(
  ctx: ProtocolContext,
  old: Ikev2Sa,
  messageId: number,
  request: readonly Payload[],
): void {
  const refuse = (type: number, data?: Uint8Array) =>
    sendResponse(ctx, old, ExchangeType.CREATE_CHILD_SA, messageId, [notify(type, data)]);
  // Section 2.25: a child SA exchange of ours is under way on this SA; the peer tries again.
  if (old.pending?.exchangeType === ExchangeType.CREATE_CHILD_SA && !old.ikeRekey) {
    refuse(NotifyType.TEMPORARY_FAILURE);
    return;
  }
  const connection = old.connection!;
  const saPayload = find(request, 'sa')!;
  const nonce = find(request, 'nonce');
  const ke = find(request, 'ke');
  if (!nonce || !ke) {
    refuse(NotifyType.INVALID_SYNTAX);
    return;
  }
  const spiR = newIkeSpi(ctx);
  const chosen = choose('ike', connection.ike.proposals, saPayload.proposals, spiR);
  const spiI = saPayload.proposals.find((p) => p.number === chosen?.proposal.number)?.spi;
  if (!chosen || spiI?.length !== 8) {
    ctx.log('warn', 'the peer’s IKE SA rekey matches none of our proposals (NO_PROPOSAL_CHOSEN)', old);
    refuse(NotifyType.NO_PROPOSAL_CHOSEN);
    return;
  }
  const group = chosen.suite.dh!;
  if (ke.group !== group.ikev2) {
    refuse(NotifyType.INVALID_KE_PAYLOAD, u16be(group.ikev2));
    return;
  }
  const Nr = newNonce(ctx);
  old.computing = true;
  ctx.compute(old, { group: group.name, peerPublic: ke.data }, (result) => {
    old.computing = false;
    if (result instanceof InvalidPublicValueError) {
      refuse(NotifyType.INVALID_SYNTAX);
      return;
    }
    if (result instanceof Error) throw result;
    const next = successor(ctx, old, 'responder', spiI, spiR);
    rekeyed(ctx, old, next, chosen.suite, { gir: result.sharedSecret!, Ni: nonce.data, Nr });
    sendResponse(ctx, old, ExchangeType.CREATE_CHILD_SA, messageId, [
      { kind: 'sa', proposals: [chosen.proposal] },
      { kind: 'nonce', data: Nr },
      { kind: 'ke', group: group.ikev2, data: result.publicKey },
    ]);
    if (old.ikeRekey) {
      // Ours is in flight too: decide when its answer is in (section 2.8.2).
      ctx.addSa(next);
      old.ikeRekey.collision = { next, Ni: nonce.data, Nr };
      ctx.log('info', 'the peer rekeys the IKE SA while we do: deciding when ours is answered', old);
      return;
    }
    rekeyedTo(ctx, old, next);
    ctx.log('info', `IKE SA rekeyed by the peer: ${formatSuite(chosen.suite)}`, next);
  });
}
