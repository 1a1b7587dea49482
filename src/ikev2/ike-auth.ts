import { addressIdentity, type Connection, formatIdentity, type Identity } from '../core/connection.js';
import { type Endpoint, formatEndpoint } from '../core/endpoint.js';
import { decodeIdentity, encodeIdentity, sameIdentity } from '../core/identity.js';
import type { ChildNegotiation } from '../core/ike-sa.js';
import { formatSuite, sameSuite } from '../core/proposal.js';
import type { ProtocolContext } from '../core/protocol.js';
import { formatTrafficSelector } from '../core/traffic-selector.js';
import { equalBytes } from '../wire/bytes.js';
import { find, findNotify, notify, type Payload } from './codec.js';
import { AuthMethod, ExchangeType, NotifyType } from './constants.js';
import {
  answerAmong,
  answerPayloads,
  childRequestPayloads,
  childSpec,
  defaultSelectors,
  espOffer,
  readChildAnswer,
} from './child.js';
import { failureOf, Ikev2Error, isTyped } from './errors.js';
import type { Ikev2Sa } from './ike-sa.js';
import { idBody, pskAuth } from './keys.js';
import { sendDeleteSpi } from './informational.js';
import { sendRequest, sendResponse } from './messages.js';

/**
 * IKE_AUTH with pre-shared keys (RFC 7296 sections 1.2, 2.15), both roles, with the first child
 * SA inside it:
 *
 *   request   HDR, SK {IDi, [IDr,] AUTH, [N(INITIAL_CONTACT),] [N(USE_TRANSPORT_MODE),] SAi2, TSi, TSr}
 *   response  HDR, SK {IDr, AUTH, [N(USE_TRANSPORT_MODE),] SAr2, TSi, TSr}
 *
 * A child SA that cannot be had (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE) leaves the IKE SA up without
 * it; an authentication failure installs nothing on either side.
 */

function ownIdentity(connection: Connection, sa: Ikev2Sa): Identity {
  return connection.local.id ?? addressIdentity(sa.local.address);
}

function idPayload(role: 'i' | 'r', identity: Identity): Extract<Payload, { kind: 'id' }> {
  return { kind: 'id', role, ...encodeIdentity(identity) };
}

// ---------------------------------------------------------------------------------------------
// Initiator

export function startIkeAuth(ctx: ProtocolContext, sa: Ikev2Sa): void {
  const connection = sa.connection!;
  const selectors = defaultSelectors(connection, sa);
  const negotiation = ctx.beginChild(sa, connection, selectors)!;
  ctx.allocateSpi(sa, (spiIn) => {
    const [id, auth] = ourIdAndAuth(sa, connection);
    const payloads: Payload[] = [
      id,
      ...(connection.peer.id ? [idPayload('r', connection.peer.id)] : []),
      auth,
      ...(ctx.hasOtherSaWithPeer(sa) ? [] : [notify(NotifyType.INITIAL_CONTACT)]),
      espOffer(connection, spiIn),
      ...childRequestPayloads(connection, selectors.localTs, selectors.remoteTs),
    ];
    sendRequest(ctx, sa, ExchangeType.IKE_AUTH, payloads, {
      onResponse: (response) => {
        try {
          onAuthResponse(ctx, sa, negotiation, spiIn, selectors, response);
        } catch (error) {
          if (!isTyped(error)) throw error;
          ctx.ikeFailed(sa, failureOf(error));
        }
      },
      onTimeout: () =>
        ctx.ikeFailed(sa, {
          cause: 'timeout',
          reason: `no answer from ${formatEndpoint(sa.remote)} to IKE_AUTH`,
        }),
    });
    ctx.log('info', `IKE_AUTH to ${sa.describe()} as ${sa.localId}`, sa);
  });
}

function onAuthResponse(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  negotiation: ChildNegotiation,
  spiIn: number,
  selectors: Parameters<typeof readChildAnswer>[2],
  response: readonly Payload[],
): void {
  const connection = sa.connection!;
  const refusal = findNotify(response, NotifyType.AUTHENTICATION_FAILED);
  if (refusal)
    throw new Ikev2Error(
      'the peer answered AUTHENTICATION_FAILED: wrong pre-shared key?',
      NotifyType.AUTHENTICATION_FAILED,
      'peer',
    );
  const id = find(response, 'id');
  const auth = find(response, 'auth');
  if (!id || id.role !== 'r' || !auth)
    throw new Ikev2Error('IKE_AUTH response without IDr or AUTH', NotifyType.INVALID_SYNTAX);
  if (auth.method !== AuthMethod.SHARED_KEY_MIC)
    throw new Ikev2Error(
      `auth method ${auth.method}, not a pre-shared key`,
      NotifyType.AUTHENTICATION_FAILED,
    );
  const expected = pskAuth(
    sa.prf!,
    connection.psk,
    sa.initResponse!,
    sa.Ni!,
    sa.keys!.SK_pr,
    idBody(id.idType, id.data),
  );
  if (!equalBytes(expected, auth.data))
    throw new Ikev2Error(
      "the responder's AUTH does not verify: wrong pre-shared key?",
      NotifyType.AUTHENTICATION_FAILED,
    );
  const identity = decodeIdentity(id.idType, id.data);
  if (!identity)
    throw new Ikev2Error(
      `ID type ${id.idType} is not supported`,
      NotifyType.AUTHENTICATION_FAILED,
      'ours',
      'identity',
    );
  if (connection.peer.id && !sameIdentity(connection.peer.id, identity))
    throw new Ikev2Error(
      `peer identifies as '${formatIdentity(identity)}', expected '${formatIdentity(connection.peer.id)}'`,
      NotifyType.AUTHENTICATION_FAILED,
      'ours',
      'identity',
    );
  ctx.authenticated(sa, identity);
  sa.state = 'ESTABLISHED';
  const nonces = { Ni: sa.Ni!, Nr: sa.Nr! }; // the first child's keys still need them
  sa.dropHandshake();
  ctx.ikeUp(sa);
  let answer;
  try {
    answer = readChildAnswer(connection, response, selectors);
  } catch (error) {
    if (!isTyped(error)) throw error;
    const failure = failureOf(error);
    ctx.log('warn', `the first child SA failed: ${failure.reason}`, sa);
    ctx.childFailed(negotiation, failure);
    // The responder made the child SA we refuse: it goes there too.
    if (find(response, 'sa')) sendDeleteSpi(ctx, sa, spiIn);
    return;
  }
  const spec = childSpec(ctx, sa, negotiation, answer, { spiIn, ...nonces, initiator: true });
  ctx.childUp(negotiation, ctx.buildChild(negotiation, spec));
}

// ---------------------------------------------------------------------------------------------
// Responder

/**
 * The initiator's IKE_AUTH (already decrypted and verified by its SK checksum). Picks the
 * connection by IDi, checks AUTH with its key, and answers with ours and the child SA.
 */
export function respondToAuth(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  messageId: number,
  request: readonly Payload[],
  local: Endpoint,
  remote: Endpoint,
): void {
  const id = find(request, 'id');
  const auth = find(request, 'auth');
  const refuse = (why: string, failure: ReturnType<typeof failureOf>) => {
    ctx.log('warn', why, sa);
    sendResponse(ctx, sa, ExchangeType.IKE_AUTH, messageId, [notify(NotifyType.AUTHENTICATION_FAILED)]);
    ctx.ikeFailed(sa, failure);
  };
  if (!id || id.role !== 'i' || !auth) {
    refuse('IKE_AUTH without IDi or AUTH', { cause: 'malformed', reason: 'IKE_AUTH without IDi or AUTH' });
    return;
  }
  const identity = decodeIdentity(id.idType, id.data);
  if (!identity) {
    refuse(`ID type ${id.idType} is not supported`, {
      cause: 'identity',
      reason: `ID type ${id.idType} is not supported`,
    });
    return;
  }
  const connection = connectionFor(ctx, sa, identity, local, remote);
  const expected = pskAuth(
    sa.prf!,
    connection.psk,
    sa.initRequest!,
    sa.Nr!,
    sa.keys!.SK_pi,
    idBody(id.idType, id.data),
  );
  if (auth.method !== AuthMethod.SHARED_KEY_MIC || !equalBytes(expected, auth.data)) {
    const reason = `the AUTH of '${formatIdentity(identity)}' does not verify: wrong pre-shared key? (AUTHENTICATION_FAILED)`;
    refuse(reason, { cause: 'authentication', reason });
    return;
  }
  if (connection.peer.id && !sameIdentity(connection.peer.id, identity)) {
    const reason = `peer identifies as '${formatIdentity(identity)}', expected '${formatIdentity(connection.peer.id)}'`;
    refuse(reason, { cause: 'identity', reason });
    return;
  }
  ctx.authenticated(sa, identity);
  // The initiator floats to the NAT-T port with IKE_AUTH (section 2.23): follow it, now that the
  // message is authenticated.
  if (local.port === ctx.settings.natPort) {
    sa.floated = true;
    sa.local = local;
    sa.remote = remote;
  }
  if (findNotify(request, NotifyType.INITIAL_CONTACT)) ctx.initialContact(sa);
  const authPayloads: Payload[] = ourIdAndAuth(sa, connection);
  const established = () => {
    sa.state = 'ESTABLISHED';
    sa.dropHandshake();
    ctx.ikeUp(sa);
  };
  // RFC 6023: an IKE_AUTH without SA, TSi and TSr asks for an IKE SA alone.
  if (!find(request, 'sa') && !find(request, 'ts')) {
    sendResponse(ctx, sa, ExchangeType.IKE_AUTH, messageId, authPayloads);
    established();
    return;
  }
  sa.computing = true;
  ctx.allocateSpi(sa, (spiIn) => {
    sa.computing = false;
    let answer, childConnection;
    try {
      ({ answer, connection: childConnection } = answerAmong(ctx, sa, request, spiIn, true));
    } catch (error) {
      if (!isTyped(error)) throw error;
      const failure = failureOf(error);
      ctx.log('warn', `IKE_AUTH from ${sa.describe()}: no child SA: ${failure.reason}`, sa, connection.name);
      sendResponse(ctx, sa, ExchangeType.IKE_AUTH, messageId, [
        ...authPayloads,
        notify(error instanceof Ikev2Error ? error.notify : NotifyType.INVALID_SYNTAX),
      ]);
      established();
      ctx.refused([connection.name], failure, 'child');
      return;
    }
    const negotiation = ctx.beginChild(sa, childConnection, {
      localTs: answer.tsr[0]!,
      remoteTs: answer.tsi[0]!,
      peerStarted: true,
    });
    if (!negotiation) return;
    const spec = childSpec(ctx, sa, negotiation, answer, { spiIn, Ni: sa.Ni!, Nr: sa.Nr!, initiator: false });
    const child = ctx.buildChild(negotiation, spec);
    established();
    ctx.childUp(negotiation, child);
    sendResponse(ctx, sa, ExchangeType.IKE_AUTH, messageId, [...authPayloads, ...answerPayloads(answer)]);
    ctx.log(
      'info',
      `IKE_AUTH from ${sa.remoteId} for '${childConnection.name}': ${child.localTs.map(formatTrafficSelector).join(',')} === ` +
        `${child.remoteTs.map(formatTrafficSelector).join(',')} ${answer.mode}, chose ${formatSuite(answer.suite)}`,
      sa,
      childConnection.name,
    );
  });
}

/**
 * IKE_SA_INIT chose a connection by address; IDi names the peer: the connection configured for
 * that identity, among those that accept the IKE SA's algorithms, takes over (section 2.15 lets
 * the responder pick the key by identity).
 */
function connectionFor(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  identity: Identity,
  local: Endpoint,
  remote: Endpoint,
): Connection {
  const current = sa.connection!;
  if (current.peer.id && sameIdentity(current.peer.id, identity)) return current;
  const better = ctx
    .forPeerIdentity(2, identity, local, remote)
    .find((c) => c.ike.proposals.some((suite) => sameSuite(suite, sa.suite!)));
  if (better) {
    ctx.assign(sa, better);
    return better;
  }
  return current;
}

/**
 * Our ID payload and the AUTH over it (section 2.15): each side signs the message it sent in
 * IKE_SA_INIT, the other side's nonce, and its ID under its own SK_p.
 */
function ourIdAndAuth(sa: Ikev2Sa, connection: Connection): [Payload, Payload] {
  const initiator = sa.role === 'initiator';
  const identity = ownIdentity(connection, sa);
  const id = idPayload(initiator ? 'i' : 'r', identity);
  sa.localId = formatIdentity(identity);
  const data = pskAuth(
    sa.prf!,
    connection.psk,
    initiator ? sa.initRequest! : sa.initResponse!,
    initiator ? sa.Nr! : sa.Ni!,
    initiator ? sa.keys!.SK_pi : sa.keys!.SK_pr,
    idBody(id.idType, id.data),
  );
  return [id, { kind: 'auth', method: AuthMethod.SHARED_KEY_MIC, data }];
}
