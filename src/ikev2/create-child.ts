import { appended, without } from '../core/collections.js';
import type { Connection } from '../core/connection.js';
import { formatEndpoint } from '../core/endpoint.js';
import type { ChildEntry, ChildNegotiation } from '../core/ike-sa.js';
import { formatSuite } from '../core/proposal.js';
import type { ProtocolContext } from '../core/protocol.js';
import { formatTrafficSelector, type TrafficSelector } from '../core/traffic-selector.js';
import { type DhJobResult, madeBefore } from '../crypto/dh-job.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import { readU32be, u16be, u32be } from '../wire/bytes.js';
import { find, findNotify, notify, type Payload } from './codec.js';
import { ExchangeType, NotifyType, ProtocolId } from './constants.js';
import {
  answerAmong,
  answerChild,
  answerPayloads,
  childRequestPayloads,
  childSpec,
  espOffer,
  readChildAnswer,
} from './child.js';
import { failureOf, Ikev2Error, isTyped } from './errors.js';
import { type ChildRekey, type Ikev2Sa, newNonce } from './ike-sa.js';
import { oursIsRedundant } from './collision.js';
import { AWAITING_DELETE_TIMER, OUTBOUND_WAIT } from './child-handover.js';
import { sendDeleteSpi } from './informational.js';
import { sendRequest, sendResponse } from './messages.js';

/**
 * CREATE_CHILD_SA for child SAs (RFC 7296 sections 1.3.1 and 1.3.3), both roles: a further child
 * SA, or the rekey of one (N(REKEY_SA) naming the SPI it replaces), with its own nonces and, for
 * PFS, its own KE:
 *
 *   request   HDR, SK {[N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr}
 *   response  HDR, SK {SA, Nr, [KEr], TSi, TSr}
 *
 * The initiator of a rekey deletes the old child SA once the new one is up (section 2.8); the
 * responder keeps the old one until that Delete comes.
 */

export function startCreateChild(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  connection: Connection,
  localTs: TrafficSelector,
  remoteTs: TrafficSelector,
  rekeyOf?: ChildEntry,
): void {
  const negotiation = ctx.beginChild(sa, connection, { localTs, remoteTs }, rekeyOf?.id)!;
  const pfs = connection.ipsec.pfs;
  ctx.allocateSpi(sa, (spiIn) => {
    const Ni = newNonce(ctx);
    const rekey: ChildRekey | undefined = rekeyOf && { oldId: rekeyOf.id, Ni };
    if (rekey) sa.childRekeys = appended(sa.childRekeys, rekey);
    const send = (dh?: DhJobResult) => {
      const payloads: Payload[] = [
        ...(rekeyOf
          ? [notify(NotifyType.REKEY_SA, new Uint8Array(0), ProtocolId.ESP, u32be(rekeyOf.child.spiIn))]
          : []),
        espOffer(connection, spiIn, pfs),
        { kind: 'nonce', data: Ni },
        ...(dh && pfs ? [{ kind: 'ke' as const, group: pfs.ikev2, data: dh.publicKey }] : []),
        ...childRequestPayloads(connection, localTs, remoteTs),
      ];
      sendRequest(ctx, sa, ExchangeType.CREATE_CHILD_SA, payloads, {
        onResponse: (response) =>
          onResponse(ctx, sa, negotiation, { spiIn, Ni, dh, localTs, remoteTs, rekey }, response),
        onTimeout: () => {
          if (rekey) sa.childRekeys = without(sa.childRekeys, rekey);
          ctx.childFailed(negotiation, {
            cause: 'timeout',
            reason: `no answer from ${formatEndpoint(sa.remote)} to CREATE_CHILD_SA`,
          });
        },
      });
      ctx.log(
        'info',
        `CREATE_CHILD_SA${rekeyOf ? ` (rekey of ${rekeyOf.child.spiIn.toString(16)})` : ''}: ${formatTrafficSelector(localTs)} === ${formatTrafficSelector(remoteTs)}`,
        sa,
        connection.name,
      );
    };
    if (!pfs) {
      send();
      return;
    }
    ctx.compute(sa, { group: pfs.name }, (result) => {
      if (result instanceof Error) throw result;
      send(result);
    });
  });
}

function onResponse(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  negotiation: ChildNegotiation,
  exchange: {
    spiIn: number;
    Ni: Uint8Array;
    dh: DhJobResult | undefined;
    localTs: TrafficSelector;
    remoteTs: TrafficSelector;
    rekey: ChildRekey | undefined;
  },
  response: readonly Payload[],
): void {
  const connection = negotiation.connection;
  const pfs = connection.ipsec.pfs;
  const { rekey } = exchange;
  if (rekey) sa.childRekeys = without(sa.childRekeys, rekey);
  const fail = (error: unknown) => {
    if (!isTyped(error)) throw error;
    const failure = failureOf(error);
    ctx.log('warn', `CREATE_CHILD_SA: ${failure.reason}`, sa, connection.name);
    ctx.childFailed(negotiation, failure);
  };
  if (rekey && refusedForNow(ctx, sa, negotiation, rekey, response)) return;
  let answer;
  try {
    answer = readChildAnswer(connection, response, exchange, pfs);
  } catch (error) {
    fail(error);
    // The responder made the child SA we refuse: it goes there too.
    if (find(response, 'sa')) sendDeleteSpi(ctx, sa, exchange.spiIn);
    return;
  }
  const nonce = find(response, 'nonce');
  const ke = find(response, 'ke');
  if (!nonce || (pfs && !ke)) {
    fail(new Ikev2Error('CREATE_CHILD_SA answer without nonce or KE', NotifyType.INVALID_SYNTAX));
    return;
  }
  const finish = (gir?: Uint8Array) => {
    const spec = childSpec(ctx, sa, negotiation, answer, {
      spiIn: exchange.spiIn,
      Ni: exchange.Ni,
      Nr: nonce.data,
      initiator: true,
      ...(gir && { gir }),
    });
    const child = ctx.buildChild(negotiation, spec);
    ctx.childUp(negotiation, child);
    const crossed = rekey?.collision;
    if (crossed && oursIsRedundant({ ours: { Ni: exchange.Ni, Nr: nonce.data }, theirs: crossed }))
      ctx.deleteChild(child.id, 'redundant after a simultaneous rekey (RFC 7296 2.8.1)');
  };
  if (!pfs) {
    finish();
    return;
  }
  ctx.compute(sa, { group: pfs.name, ...madeBefore(exchange.dh!), peerPublic: ke!.data }, (result) => {
    if (result instanceof InvalidPublicValueError) {
      fail(new Ikev2Error(result.message, NotifyType.INVALID_SYNTAX));
      return;
    }
    if (result instanceof Error) throw result;
    finish(result.sharedSecret);
  });
}

/** The peer's CREATE_CHILD_SA for a child SA (verified): answer it, or refuse with a notify. */
export function respondToCreateChild(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  messageId: number,
  request: readonly Payload[],
): void {
  const refuse = (type: number, data?: Uint8Array) =>
    sendResponse(ctx, sa, ExchangeType.CREATE_CHILD_SA, messageId, [notify(type, data)]);
  const rekey = findNotify(request, NotifyType.REKEY_SA);
  let replaced: ChildEntry | undefined;
  if (rekey) {
    const spi = rekey.spi.length === 4 ? readU32be(rekey.spi) : -1;
    replaced = sa.children.find((entry) => entry.child.spiOut === spi);
    if (!replaced) {
      refuse(NotifyType.CHILD_SA_NOT_FOUND);
      return;
    }
  }
  const nonce = find(request, 'nonce');
  const ke = find(request, 'ke');
  if (!nonce) {
    refuse(NotifyType.INVALID_SYNTAX);
    return;
  }
  // A rekey stays with the connection of the child SA it replaces; anything else may be for
  // any connection this IKE SA carries.
  sa.computing = true;
  ctx.allocateSpi(sa, (spiIn) => {
    sa.computing = false;
    let answer;
    let connection = replaced
      ? ctx.siblings(sa.connection!).find((c) => c.name === replaced.child.connection)
      : sa.connection!;
    try {
      if (!connection)
        throw new Ikev2Error(
          'the child SA to rekey has no connection any more',
          NotifyType.CHILD_SA_NOT_FOUND,
        );
      if (replaced) answer = answerChild(connection, sa, request, spiIn, false);
      else ({ answer, connection } = answerAmong(ctx, sa, request, spiIn, false));
      // A group chosen without its KE (or with another group's): ask for the one we chose.
      if (answer.suite.dh && ke?.group !== answer.suite.dh.ikev2) {
        refuse(NotifyType.INVALID_KE_PAYLOAD, u16be(answer.suite.dh.ikev2));
        return;
      }
    } catch (error) {
      if (!isTyped(error)) throw error;
      const failure = failureOf(error);
      const name = (connection ?? sa.connection!).name;
      ctx.log('warn', `CREATE_CHILD_SA from ${sa.describe()} refused: ${failure.reason}`, sa, name);
      ctx.refused([name], failure, 'child');
      refuse(error instanceof Ikev2Error ? error.notify : NotifyType.INVALID_SYNTAX);
      return;
    }
    const negotiation = ctx.beginChild(
      sa,
      connection,
      { localTs: answer.tsr[0]!, remoteTs: answer.tsi[0]!, peerStarted: true, keepReplaced: true },
      replaced?.id,
    );
    if (!negotiation) {
      refuse(NotifyType.TEMPORARY_FAILURE);
      return;
    }
    const Nr = newNonce(ctx);
    const finish = (dh?: DhJobResult) => {
      const spec = childSpec(ctx, sa, negotiation, answer, {
        spiIn,
        Ni: nonce.data,
        Nr,
        initiator: false,
        ...(dh?.sharedSecret && { gir: dh.sharedSecret }),
      });
      const child = ctx.buildChild(negotiation, spec);
      if (replaced) {
        // Section 2.8: the rekey's initiator may not have the new SAs in place until it has our
        // answer; we receive on them at once, and send on them once it deletes the old pair.
        ctx.installInbound(negotiation, child);
        sa.awaitingDelete = appended(sa.awaitingDelete, {
          negotiation,
          child,
          oldSpiOut: replaced.child.spiOut,
          until: ctx.now + OUTBOUND_WAIT,
        });
        ctx.arm(sa, AWAITING_DELETE_TIMER, Math.min(...sa.awaitingDelete.map((a) => a.until)));
      } else ctx.childUp(negotiation, child);
      // Our own rekey of the same child SA is in flight: decide when its answer is in (2.8.1).
      const ours = replaced && sa.childRekeys.find((r) => r.oldId === replaced.id);
      if (ours) ours.collision = { childId: child.id, Ni: nonce.data, Nr };
      sendResponse(ctx, sa, ExchangeType.CREATE_CHILD_SA, messageId, [
        ...answerPayloads(answer).filter((p) => p.kind !== 'ts'),
        { kind: 'nonce', data: Nr },
        ...(dh && answer.suite.dh
          ? [{ kind: 'ke' as const, group: answer.suite.dh.ikev2, data: dh.publicKey }]
          : []),
        ...answerPayloads(answer).filter((p) => p.kind === 'ts'),
      ]);
      ctx.log(
        'info',
        `CREATE_CHILD_SA${replaced ? ' (rekey)' : ''} for '${connection.name}': chose ${formatSuite(answer.suite)}`,
        sa,
        connection.name,
      );
    };
    if (!answer.suite.dh || !ke) {
      finish();
      return;
    }
    ctx.compute(sa, { group: answer.suite.dh.name, peerPublic: ke.data }, (result) => {
      if (result instanceof InvalidPublicValueError) {
        ctx.childFailed(negotiation, { cause: 'malformed', reason: result.message });
        refuse(NotifyType.INVALID_SYNTAX);
        return;
      }
      if (result instanceof Error) throw result;
      finish(result);
    });
  });
}

/** Seconds before a rekey the peer answered TEMPORARY_FAILURE is tried again (section 2.25). */
const RETRY_MIN = 2;
const RETRY_SPREAD = 3;

/**
 * Answers to a child SA rekey that end it without a failure (section 2.25): TEMPORARY_FAILURE
 * (the peer is busy, e.g. rekeying the IKE SA: try again shortly) and CHILD_SA_NOT_FOUND (the
 * peer deleted the child SA meanwhile: it goes here too, quietly).
 */
function refusedForNow(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  negotiation: ChildNegotiation,
  rekey: ChildRekey,
  response: readonly Payload[],
): boolean {
  if (findNotify(response, NotifyType.TEMPORARY_FAILURE)) {
    const delay = RETRY_MIN + ctx.random() * RETRY_SPREAD;
    ctx.childDeferred(negotiation, delay, 'the peer answered the child SA rekey with TEMPORARY_FAILURE');
    return true;
  }
  if (findNotify(response, NotifyType.CHILD_SA_NOT_FOUND)) {
    ctx.endChild(negotiation);
    const old = sa.children.find((entry) => entry.id === rekey.oldId);
    ctx.log('info', 'the peer no longer has the child SA we rekeyed (CHILD_SA_NOT_FOUND): deleting ours', sa);
    if (old) ctx.childrenDeletedByPeer(sa, [old.child.spiOut]);
    return true;
  }
  return false;
}
