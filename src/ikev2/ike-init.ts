import { parseAddress } from '../core/address.js';
import type { Connection } from '../core/connection.js';
import { type Endpoint, formatEndpoint } from '../core/endpoint.js';
import { formatSuite } from '../core/proposal.js';
import type { ProtocolContext } from '../core/protocol.js';
import { policyLabel } from '../core/connection.js';
import { udpEncapsulated } from '../core/sa.js';
import { type DhJob, madeBefore } from '../crypto/dh-job.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import { findIkev2 } from '../crypto/registry.js';
import { equalBytes, toHex, u16be } from '../wire/bytes.js';
import { type DecodedMessage, find, findAll, findNotify, notify, type Payload } from './codec.js';
import { ExchangeType, notifyName, NotifyType } from './constants.js';
import { Ikev2Error } from './errors.js';
import { Ikev2Sa, keyed, newIkeSpi, newNonce } from './ike-sa.js';
import { deriveIkeKeys } from './keys.js';
import { sendRequest, sendResponse, sendStateless } from './messages.js';
import { choose, chosenSuite, noProposalReason, offerProposals, policySets } from './proposals.js';

/**
 * IKE_SA_INIT (RFC 7296 section 1.2), both roles:
 *
 *   request   HDR, SAi1, KEi, Ni, N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP),
 *             N(IKEV2_FRAGMENTATION_SUPPORTED), N(CHILDLESS_IKEV2_SUPPORTED)
 *   response  HDR, SAr1, KEr, Nr, the same notifies
 *
 * with the responder's stateless refusals: INVALID_KE_PAYLOAD naming the group it wants (the
 * initiator tries again with it, section 1.3.1), COOKIE when it is busy (section 2.6), and
 * NO_PROPOSAL_CHOSEN.
 */

/** The lookup key of a responder's SA by the initiator's SPI and address: a repeated IKE_SA_INIT. */
export function initKey(spiI: Uint8Array, remote: Endpoint): string {
  return `2i:${hex(spiI)}@${remote.address}:${remote.port}`;
}

/** The lookup key of an SA by both SPIs. */
export function pairKey(spiI: Uint8Array, spiR: Uint8Array): string {
  return `2p:${hex(spiI)}${hex(spiR)}`;
}

/** The lookup key of an initiator's SA until the responder's SPI is known. */
export function initiatorKey(spiI: Uint8Array): string {
  return `2s:${hex(spiI)}`;
}

function hex(bytes: Uint8Array): string {
  return toHex(bytes);
}

/** NAT_DETECTION_*_IP = SHA-1(SPIi | SPIr | IP address | port), section 2.23. */
function natHash(ctx: ProtocolContext, spiI: Uint8Array, spiR: Uint8Array, endpoint: Endpoint): Uint8Array {
  return ctx.crypto.hash('sha1', spiI, spiR, parseAddress(endpoint.address), u16be(endpoint.port));
}

function natNotifies(ctx: ProtocolContext, sa: Ikev2Sa): Payload[] {
  const source = ctx.settings.forceEncapsulation
    ? ctx.crypto.randomBytes(20) // claim a NAT, so that both ends put ESP in UDP
    : natHash(ctx, sa.spiI, sa.spiR, sa.local);
  return [
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, source),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natHash(ctx, sa.spiI, sa.spiR, sa.remote)),
  ];
}

/**
 * Which side is behind a NAT, from the peer's NAT-D notifies (section 2.23). Their hashes cover
 * the SPIs as the message's header carries them: `spiR` is zero in the request.
 */
function detectNat(ctx: ProtocolContext, sa: Ikev2Sa, payloads: readonly Payload[], spiR: Uint8Array): void {
  const sources = findAll(payloads, 'notify').filter(
    (n) => n.notifyType === NotifyType.NAT_DETECTION_SOURCE_IP,
  );
  const destination = findNotify(payloads, NotifyType.NAT_DETECTION_DESTINATION_IP);
  if (!sources.length || !destination) return;
  const local = !equalBytes(destination.data, natHash(ctx, sa.spiI, spiR, sa.local));
  const remote = !sources.some((n) => equalBytes(n.data, natHash(ctx, sa.spiI, spiR, sa.remote)));
  sa.nat = ctx.settings.forceEncapsulation ? { local, remote, forced: true } : { local, remote };
  if (local || remote) ctx.log('info', `NAT detected: ${local ? 'we are' : 'the peer is'} behind a NAT`, sa);
}

// ---------------------------------------------------------------------------------------------
// Initiator

export interface InitiatorHooks {
  /** IKE_SA_INIT is done: go on with IKE_AUTH. */
  authenticate(sa: Ikev2Sa): void;
}

export function startIkeSaInit(
  ctx: ProtocolContext,
  connection: Connection,
  local: Endpoint,
  remote: Endpoint,
  hooks: InitiatorHooks,
): Ikev2Sa {
  const sa = new Ikev2Sa(ctx.nextId(), 'initiator', newIkeSpi(ctx), local, remote, ctx.now);
  sa.connection = connection;
  sa.Ni = newNonce(ctx);
  ctx.index(sa, initiatorKey(sa.spiI));
  // The group of our first proposal; INVALID_KE_PAYLOAD tells us when the responder wants another.
  keyExchange(ctx, sa, connection.ike.proposals[0]!.dh!.ikev2, hooks);
  ctx.log(
    'info',
    `initiating IKE_SA_INIT to ${sa.describe()}, offering ${connection.ike.proposals.map(formatSuite).join(', ')}`,
    sa,
  );
  return sa;
}

/** A key pair for `group`, then the request (again after INVALID_KE_PAYLOAD or COOKIE). */
function keyExchange(ctx: ProtocolContext, sa: Ikev2Sa, group: number, hooks: InitiatorHooks): void {
  const dh = findIkev2('dh', group)!;
  sa.computing = true;
  ctx.compute(sa, { group: dh.name }, (result) => {
    sa.computing = false;
    if (result instanceof Error) throw result;
    sa.dh = result;
    sa.dhGroup = group;
    sendInit(ctx, sa, hooks);
  });
}

function sendInit(ctx: ProtocolContext, sa: Ikev2Sa, hooks: InitiatorHooks): void {
  const group = sa.dhGroup!;
  const connection = sa.connection!;
  const payloads: Payload[] = [
    ...(sa.cookie ? [notify(NotifyType.COOKIE, sa.cookie)] : []),
    { kind: 'sa', proposals: offerProposals('ike', policySets(connection.ike), new Uint8Array(0)) },
    { kind: 'ke', group, data: sa.dh!.publicKey },
    { kind: 'nonce', data: sa.Ni! },
    ...natNotifies(ctx, sa),
    notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED),
    notify(NotifyType.CHILDLESS_IKEV2_SUPPORTED),
  ];
  sa.nextRequestId = 0;
  sendRequest(ctx, sa, ExchangeType.IKE_SA_INIT, payloads, {
    onResponse: (response) => onInitResponse(ctx, sa, response, hooks),
    onTimeout: () =>
      ctx.ikeFailed(sa, {
        cause: 'timeout',
        reason: `no answer from ${formatEndpoint(sa.remote)} to IKE_SA_INIT`,
      }),
  });
}

function onInitResponse(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  payloads: readonly Payload[],
  hooks: InitiatorHooks,
): void {
  const cookie = findNotify(payloads, NotifyType.COOKIE);
  if (cookie) {
    // Section 2.6: the same request again, the cookie first; the message ID stays 0.
    if (sa.cookie) throw new Ikev2Error('the responder asked for a cookie again', NotifyType.INVALID_SYNTAX);
    sa.cookie = cookie.data;
    ctx.log('info', 'the responder asked for a cookie: sending IKE_SA_INIT again with it', sa);
    sendInit(ctx, sa, hooks);
    return;
  }
  const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
  if (invalidKe && invalidKe.data.length === 2) {
    const wanted = (invalidKe.data[0]! << 8) | invalidKe.data[1]!;
    const ours = sa.connection!.ike.proposals.some((suite) => suite.dh?.ikev2 === wanted);
    if (!ours || wanted === sa.dhGroup)
      throw new Ikev2Error(
        `the responder wants DH group ${wanted}, which we do not offer`,
        NotifyType.NO_PROPOSAL_CHOSEN,
      );
    ctx.log(
      'info',
      `the responder wants DH group ${findIkev2('dh', wanted)!.name} (INVALID_KE_PAYLOAD): trying again with it`,
      sa,
    );
    sa.dh = undefined;
    keyExchange(ctx, sa, wanted, hooks);
    return;
  }
  for (const n of findAll(payloads, 'notify'))
    if (n.notifyType < 16384)
      throw new Ikev2Error(`the responder answered ${notifyName(n.notifyType)}`, n.notifyType, 'peer');
  const saPayload = find(payloads, 'sa');
  const ke = find(payloads, 'ke');
  const nonce = find(payloads, 'nonce');
  if (!saPayload || !ke || !nonce)
    throw new Ikev2Error('IKE_SA_INIT response without SA, KE or nonce', NotifyType.INVALID_SYNTAX);
  const chosen = chosenSuite('ike', saPayload.proposals, sa.connection!.ike.proposals);
  if (!chosen)
    throw new Ikev2Error('the responder chose a proposal we did not offer', NotifyType.NO_PROPOSAL_CHOSEN);
  if (chosen.suite.dh!.ikev2 !== ke.group || ke.group !== sa.dhGroup)
    throw new Ikev2Error(
      `KE of group ${ke.group} does not match the chosen group`,
      NotifyType.INVALID_SYNTAX,
    );
  sa.suite = chosen.suite;
  sa.lifetimeSeconds = sa.connection!.ike.lifetime.seconds;
  sa.Nr = nonce.data;
  sa.fragmentation = !!findNotify(payloads, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED);
  detectNat(ctx, sa, payloads, sa.spiR);
  if (udpEncapsulated(sa.nat)) {
    // Section 2.23: the initiator moves to port 4500 with IKE_AUTH.
    sa.floated = true;
    sa.local = { address: sa.local.address, port: ctx.settings.natPort };
    sa.remote = { address: sa.remote.address, port: sa.connection!.peer.natPort ?? 4500 };
  }
  const job = { group: chosen.suite.dh!.name, ...madeBefore(sa.dh!), peerPublic: ke.data };
  deriveKeys(ctx, sa, chosen.suite, job, () => {
    sa.dh = undefined;
    sa.state = 'IKE_AUTH_I';
    hooks.authenticate(sa);
  });
}

/**
 * g^ir, then SKEYSEED and the SK_* keys (section 2.14), with the SA's messages held back
 * meanwhile; `then` gets our public value (the responder's KE). A peer's public value that
 * fails validation (RFC 6989) ends the SA.
 */
function deriveKeys(
  ctx: ProtocolContext,
  sa: Ikev2Sa,
  suite: NonNullable<Ikev2Sa['suite']>,
  job: DhJob,
  then: (publicKey: Uint8Array) => void,
): void {
  sa.computing = true;
  ctx.compute(sa, job, (result) => {
    sa.computing = false;
    if (result instanceof InvalidPublicValueError) {
      ctx.ikeFailed(sa, { cause: 'malformed', reason: result.message });
      return;
    }
    if (result instanceof Error) throw result;
    const input = { gir: result.sharedSecret!, Ni: sa.Ni!, Nr: sa.Nr!, SPIi: sa.spiI, SPIr: sa.spiR };
    keyed(ctx, sa, deriveIkeKeys(ctx.crypto, suite, input, sa.role === 'initiator'));
    then(result.publicKey);
  });
}

// ---------------------------------------------------------------------------------------------
// Responder

/** A first message (responder SPI zero): answered, refused statelessly, or dropped. */
export function respondToInit(
  ctx: ProtocolContext,
  message: DecodedMessage,
  datagram: Uint8Array,
  local: Endpoint,
  remote: Endpoint,
  cookies: {
    required(remote: Endpoint): boolean;
    make(spiI: Uint8Array, Ni: Uint8Array, remote: Endpoint): Uint8Array;
  },
): void {
  const { header, payloads } = message;
  const stateless = (type: number, data?: Uint8Array) =>
    sendStateless(
      ctx,
      local,
      remote,
      { spiI: header.spiI, exchangeType: ExchangeType.IKE_SA_INIT, messageId: 0 },
      type,
      data,
    );
  const saPayload = find(payloads, 'sa');
  const ke = find(payloads, 'ke');
  const nonce = find(payloads, 'nonce');
  if (!saPayload || !ke || !nonce) {
    ctx.logUnauthenticated(
      'debug',
      'init-malformed',
      `IKE_SA_INIT from ${formatEndpoint(remote)} without SA, KE or nonce`,
    );
    stateless(NotifyType.INVALID_SYNTAX);
    return;
  }
  // Section 2.6: when busy, make the initiator prove its address before anything is kept or computed.
  if (cookies.required(remote)) {
    const expected = cookies.make(header.spiI, nonce.data, remote);
    const offered = findNotify(payloads, NotifyType.COOKIE);
    if (!offered || !equalBytes(offered.data, expected)) {
      stateless(NotifyType.COOKIE, expected);
      return;
    }
  }
  if (!ctx.admitHalfOpen(remote)) return;
  const candidates = ctx.responderCandidates(2, local, remote);
  let chosen: ReturnType<typeof choose>;
  let connection: Connection | undefined;
  for (const candidate of candidates) {
    chosen = choose('ike', candidate.ike.proposals, saPayload.proposals, new Uint8Array(0));
    if (chosen) {
      connection = candidate;
      break;
    }
  }
  if (!connection || !chosen) {
    const reason = candidates.length
      ? noProposalReason(
          'ike',
          candidates.map((c) => ({
            what: policyLabel('ikePolicy', c.ike.name, c.name),
            suites: c.ike.proposals,
          })),
          saPayload.proposals,
        )
      : `no IKEv2 connection for ${remote.address} at ${local.address}`;
    ctx.logUnauthenticated(
      'warn',
      `init-refused ${candidates.map((c) => c.name).join(' ')}`,
      `IKE_SA_INIT from ${formatEndpoint(remote)} refused: ${reason}`,
      candidates.length === 1 ? candidates[0]!.name : undefined,
    );
    ctx.refused(
      candidates.map((c) => c.name),
      { cause: 'no-proposal', reason: `${reason} (NO_PROPOSAL_CHOSEN)` },
      'ike',
    );
    stateless(NotifyType.NO_PROPOSAL_CHOSEN);
    return;
  }
  const group = chosen.suite.dh!;
  if (ke.group !== group.ikev2) {
    // Section 1.3.1: name the group we want; the initiator tries again (no state kept here).
    ctx.logUnauthenticated(
      'info',
      'invalid-ke',
      `IKE_SA_INIT from ${formatEndpoint(remote)}: KE of group ${ke.group}, asking for ${group.name}`,
    );
    stateless(NotifyType.INVALID_KE_PAYLOAD, u16be(group.ikev2));
    return;
  }
  const sa = new Ikev2Sa(ctx.nextId(), 'responder', header.spiI, local, remote, ctx.now);
  sa.connection = connection;
  sa.spiR.set(newIkeSpi(ctx));
  sa.suite = chosen.suite;
  sa.lifetimeSeconds = connection.ike.lifetime.seconds;
  sa.Ni = nonce.data;
  sa.Nr = newNonce(ctx);
  sa.fragmentation = !!findNotify(payloads, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED);
  sa.floated = local.port === ctx.settings.natPort;
  sa.initRequest = datagram;
  sa.peerNextId = 1;
  ctx.index(sa, initKey(sa.spiI, remote));
  ctx.index(sa, pairKey(sa.spiI, sa.spiR));
  ctx.addSa(sa);
  detectNat(ctx, sa, payloads, new Uint8Array(8));
  const reply = chosen.proposal;
  deriveKeys(ctx, sa, chosen.suite, { group: group.name, peerPublic: ke.data }, (publicKey) => {
    sendResponse(ctx, sa, ExchangeType.IKE_SA_INIT, 0, [
      { kind: 'sa', proposals: [reply] },
      { kind: 'ke', group: group.ikev2, data: publicKey },
      { kind: 'nonce', data: sa.Nr! },
      ...natNotifies(ctx, sa),
      ...(sa.fragmentation ? [notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)] : []),
      // RFC 6023: we take an IKE_AUTH without a child SA (and make child SAs later on request).
      notify(NotifyType.CHILDLESS_IKEV2_SUPPORTED),
    ]);
    ctx.log(
      'info',
      `IKE_SA_INIT from ${sa.describe()} for '${connection!.name}': chose ${formatSuite(chosen!.suite)}`,
      sa,
    );
  });
}
