import {
  addressIdentity,
  type Connection,
  formatIdentity,
  type Identity,
  policyLabel,
} from '../core/connection.js';
import { type Endpoint, formatEndpoint } from '../core/endpoint.js';
import type { Failure } from '../core/failure.js';
import {
  explainMismatch,
  formatSuite,
  sameSuite,
  selectSuite,
  sharedSuite,
  type Suite,
} from '../core/proposal.js';
import type { ProtocolContext } from '../core/protocol.js';
import { udpEncapsulated } from '../core/sa.js';
import { type DhJobResult, madeBefore } from '../crypto/dh-job.js';
import { derivePhase1PskKeys } from '../crypto/kdf-ikev1.js';
import { sealKeys } from '../crypto/secret.js';
import { encryptionOf, prfOf } from '../crypto/transforms.js';
import { equalBytes, toHex } from '../wire/bytes.js';
import { DecodeError } from '../wire/errors.js';
import { type DecodedMessage, type Payload, payloadBody } from './codec.js';
import { ExchangeType, NotifyType } from './constants.js';
import { computeDh } from './dh.js';
import { beforeVerification, ExchangeError, failureOf, notifyOf, type UnverifiedMessage } from './errors.js';
import { clearNotify } from './informational.js';
import { sameIdentity } from '../core/identity.js';
import { identityFromIdPayload, idPayloadFromIdentity } from './identification.js';
import { find, findAll, IsakmpSa, isakmpSpi } from './isakmp-sa.js';
import { detectNat, natDetectionHash } from './nat-t.js';
import { parsePhase1Sa, phase1Sa } from './proposals.js';
import { Phase1Protection } from './protection.js';
import { OWN_VENDOR_ID, recognizeVendorIds, VendorId, vendorIdNames } from './vendor-ids.js';

type IdPayload = Extract<Payload, { kind: 'id' }>;

/**
 * Main mode with pre-shared keys (RFC 2409 section 5.4), both roles:
 *
 *   1 I->R  HDR, SA, VID*            2 R->I  HDR, SA, VID*
 *   3 I->R  HDR, KE, Ni, NAT-D*      4 R->I  HDR, KE, Nr, NAT-D*
 *   5 I->R  HDR*, IDii, HASH_I       6 R->I  HDR*, IDir, HASH_R
 *
 * The Diffie-Hellman computations go through ProtocolContext.compute, which may finish them on
 * another thread: the SA waits (`computing`) and ignores the peer's retransmissions meanwhile.
 */

const NONCE_LENGTH = 32;
const DEFAULT_PHASE1_LIFETIME = 28800; // RFC 2407 section 4.5: 8 hours when none is proposed

/** Suites of a connection that IKEv1 phase 1 can carry (AEADs and curve25519 cannot). */
export function phase1Suites(connection: Connection): Suite[] {
  return connection.ike.proposals.filter(
    (suite) => suite.encr.ikev1?.phase1 !== undefined && suite.prf?.ikev1 && suite.dh?.ikev1 !== undefined,
  );
}

function vendorIds(natT: boolean, dpd: boolean): Payload[] {
  const vids: Uint8Array[] = [OWN_VENDOR_ID];
  if (natT)
    vids.push(
      VendorId.NAT_T_RFC3947,
      VendorId.NAT_T_DRAFT_03,
      VendorId.NAT_T_DRAFT_02_N,
      VendorId.NAT_T_DRAFT_02,
    );
  if (dpd) vids.push(VendorId.DPD);
  return vids.map((data) => ({ kind: 'vendor', data }));
}

// ---------------------------------------------------------------------------------------------
// Initiator

export function startMainMode(
  ctx: ProtocolContext,
  connection: Connection,
  from: Endpoint,
  to: Endpoint,
  options: { floated?: boolean; maxLifetime?: number } = {},
): IsakmpSa {
  const sa = new IsakmpSa(ctx.nextId(), 'initiator', cookie(ctx), from, to, ctx.now);
  sa.connection = connection;
  // Begun on the NAT-T port: every message carries the non-ESP marker (RFC 3947 section 4).
  sa.floated = options.floated ?? false;
  sa.offered = phase1Suites(connection);
  if (sa.offered.length === 0) throw new RangeError(`${connection.name}: no IKEv1-capable IKE proposal`);
  const SAi = phase1Sa(
    sa.offered,
    Math.min(connection.ike.lifetime.seconds, options.maxLifetime ?? Infinity),
  );
  sa.SAi_b = payloadBody(SAi);
  ctx.index(sa, initiatorKey(sa.CKY_I));
  sa.send(ctx, ExchangeType.IDENTITY_PROTECTION, 0, [SAi, ...vendorIds(true, true)], {
    encrypt: false,
    flight: sa.mainMode,
    awaitReply: true,
  });
  ctx.log(
    'info',
    `initiating main mode to ${sa.describe()}, offering ${sa.offered.map(formatSuite).join(', ')}`,
    sa,
  );
  return sa;
}

/** The lookup key of an initiator's SA until the responder's cookie is known. */
export function initiatorKey(CKY_I: Uint8Array): string {
  return `1i:${toHex(CKY_I)}`;
}

function onMessage2(ctx: ProtocolContext, sa: IsakmpSa, payloads: readonly Payload[]): void {
  const saPayload = find(payloads, 'sa');
  if (!saPayload) throw new ExchangeError('message 2 without SA', NotifyType.PAYLOAD_MALFORMED);
  const { offers } = parsePhase1Sa(saPayload);
  const chosen = offers.length === 1 ? offers[0]! : undefined;
  if (!chosen || selectSuite([chosen.suite], sa.offered) === undefined)
    throw new ExchangeError('responder chose a transform we did not offer', NotifyType.NO_PROPOSAL_CHOSEN);
  sa.suite = chosen.suite;
  sa.lifetimeSeconds = Math.min(
    chosen.lifetime.seconds ?? DEFAULT_PHASE1_LIFETIME,
    sa.connection!.ike.lifetime.seconds,
  );
  learnVendorIds(ctx, sa, payloads);
  sa.Ni_b = ctx.crypto.randomBytes(NONCE_LENGTH);
  sa.state = 'MM_KE_I';
  compute(ctx, sa, undefined, (dh) => {
    sa.dh = dh;
    sa.gxi = dh.publicKey;
    sa.send(
      ctx,
      ExchangeType.IDENTITY_PROTECTION,
      0,
      [{ kind: 'ke', data: sa.gxi }, { kind: 'nonce', data: sa.Ni_b! }, ...natDetectionPayloads(ctx, sa)],
      { encrypt: false, flight: sa.mainMode, awaitReply: true },
    );
  });
}

function onMessage4(ctx: ProtocolContext, sa: IsakmpSa, payloads: readonly Payload[]): void {
  const ke = find(payloads, 'ke');
  const nonce = find(payloads, 'nonce');
  if (!ke || !nonce) throw new ExchangeError('message 4 without KE or nonce', NotifyType.PAYLOAD_MALFORMED);
  sa.gxr = ke.data;
  sa.Nr_b = nonce.data;
  compute(ctx, sa, sa.gxr, (dh) => {
    deriveKeys(ctx, sa, dh.sharedSecret!);
    detect(ctx, sa, payloads);
    if (udpEncapsulated(sa.nat) && !sa.floated) {
      // RFC 3947 section 4: the initiator moves to port 4500 for message 5 onwards (unless it
      // began there, a rekey towards the NAT's mapping, which it keeps).
      sa.floated = true;
      sa.local = { address: sa.local.address, port: ctx.settings.natPort };
      sa.remote = { address: sa.remote.address, port: sa.connection!.peer.natPort ?? 4500 };
    }
    const idPayload = ownIdPayload(sa);
    const HASH_I = authHash(sa, 'initiator', payloadBody(idPayload));
    const message5: Payload[] = [idPayload, { kind: 'hash', data: HASH_I }];
    if (!ctx.hasOtherSaWithPeer(sa)) {
      message5.push({
        kind: 'notify',
        doi: 1,
        protocolId: 1,
        notifyType: NotifyType.INITIAL_CONTACT,
        spi: isakmpSpi(sa),
        data: new Uint8Array(0),
      });
    }
    sa.state = 'MM_AUTH_I';
    sa.send(ctx, ExchangeType.IDENTITY_PROTECTION, 0, message5, {
      encrypt: true,
      flight: sa.mainMode,
      awaitReply: true,
    });
  });
}

function onMessage6(ctx: ProtocolContext, sa: IsakmpSa, id: IdPayload): void {
  const identity = identityOf(id);
  checkIdentity(sa, identity);
  ctx.authenticated(sa, identity);
  established(ctx, sa);
}

// ---------------------------------------------------------------------------------------------
// Responder

/** Message 1: choose a connection and a transform, or explain why none fits. */
export function respondToMessage1(
  ctx: ProtocolContext,
  message: DecodedMessage,
  local: Endpoint,
  remote: Endpoint,
): IsakmpSa {
  const payloads = message.payloads ?? [];
  const saPayload = find(payloads, 'sa');
  if (!saPayload) throw new ExchangeError('message 1 without SA', NotifyType.PAYLOAD_MALFORMED);
  const { offers, skipped } = parsePhase1Sa(saPayload);
  const candidates = ctx.responderCandidates(1, local, remote);
  if (candidates.length === 0)
    throw new ExchangeError(
      `no IKEv1 connection for ${remote.address} at ${local.address}`,
      NotifyType.NO_PROPOSAL_CHOSEN,
    );
  for (const connection of candidates) {
    const index = selectSuite(
      phase1Suites(connection),
      offers.map((offer) => offer.suite),
    );
    if (index === undefined) continue;
    const offer = offers[index]!;
    const sa = new IsakmpSa(ctx.nextId(), 'responder', message.header.CKY_I, local, remote, ctx.now);
    sa.connection = connection;
    sa.CKY_R.set(cookie(ctx));
    sa.suite = sharedSuite(phase1Suites(connection), offer.suite);
    sa.offered = [sa.suite];
    sa.lifetimeSeconds = Math.min(
      offer.lifetime.seconds ?? DEFAULT_PHASE1_LIFETIME,
      connection.ike.lifetime.seconds,
    );
    sa.SAi_b = payloadBody(saPayload);
    learnVendorIds(ctx, sa, payloads);
    const proposal = saPayload.proposals.find((p) => p.transforms.includes(offer.transform))!;
    const reply: Payload = { ...saPayload, proposals: [{ ...proposal, transforms: [offer.transform] }] };
    ctx.index(sa, pairKey(sa.CKY_I, sa.CKY_R));
    ctx.index(sa, firstMessageKey(sa.CKY_I, remote));
    sa.send(
      ctx,
      ExchangeType.IDENTITY_PROTECTION,
      0,
      [reply, { kind: 'vendor', data: OWN_VENDOR_ID }, ...answerVendorIds(sa)],
      // Sent again only when message 1 is (the initiator's timer drives main mode until message
      // 3 proves its address): a timer here would answer each spoofed message 1 several times.
      // strongSwan's responder resends only on a repeated request too.
      { encrypt: false, flight: sa.mainMode, awaitReply: false },
    );
    ctx.log(
      'info',
      `main mode from ${sa.describe()} for '${connection.name}': chose ${formatSuite(offer.suite)}`,
      sa,
    );
    return sa;
  }
  const ours = [...new Set(candidates.flatMap(phase1Suites).map(formatSuite))];
  const advice = explainMismatch(
    candidates.map((c) => ({ what: policyLabel('ikePolicy', c.ike.name, c.name), suites: phase1Suites(c) })),
    offers.map((o) => o.suite),
  );
  throw new ExchangeError(
    `no proposal chosen: peer offers ${offers.map((o) => formatSuite(o.suite)).join(', ') || 'nothing usable'}` +
      `${skipped.length ? ` (unusable: ${skipped.join('; ')})` : ''}; we accept ${ours.join(', ')}` +
      `${advice ? `; ${advice}` : ''}`,
    NotifyType.NO_PROPOSAL_CHOSEN,
    candidates.map((c) => c.name),
  );
}

/** The lookup key of an SA by both cookies. */
export function pairKey(CKY_I: Uint8Array, CKY_R: Uint8Array): string {
  return `1p:${toHex(CKY_I)}${toHex(CKY_R)}`;
}

/** The lookup key of a responder's SA by the initiator's cookie and address: a repeated message 1. */
export function firstMessageKey(CKY_I: Uint8Array, remote: Endpoint): string {
  return `1h:${toHex(CKY_I)}@${remote.address}:${remote.port}`;
}

function onMessage3(ctx: ProtocolContext, sa: IsakmpSa, payloads: readonly Payload[]): void {
  const ke = find(payloads, 'ke');
  const nonce = find(payloads, 'nonce');
  if (!ke || !nonce) throw new ExchangeError('message 3 without KE or nonce', NotifyType.PAYLOAD_MALFORMED);
  sa.gxi = ke.data;
  sa.Ni_b = nonce.data;
  sa.Nr_b = ctx.crypto.randomBytes(NONCE_LENGTH);
  sa.state = 'MM_KE_R';
  compute(ctx, sa, sa.gxi, (dh) => {
    sa.gxr = dh.publicKey;
    deriveKeys(ctx, sa, dh.sharedSecret!);
    detect(ctx, sa, payloads);
    sa.send(
      ctx,
      ExchangeType.IDENTITY_PROTECTION,
      0,
      [{ kind: 'ke', data: sa.gxr }, { kind: 'nonce', data: sa.Nr_b! }, ...natDetectionPayloads(ctx, sa)],
      { encrypt: false, flight: sa.mainMode, awaitReply: true },
    );
  });
}

function onMessage5(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  id: IdPayload,
  payloads: readonly Payload[],
  local: Endpoint,
  remote: Endpoint,
): void {
  const identity = identityOf(id);
  chooseByIdentity(ctx, sa, identity);
  ctx.authenticated(sa, identity);
  // The initiator floats to the NAT-T port with message 5 (RFC 3947 section 4); the SA follows it
  // only now that the message is authenticated.
  if (local.port === ctx.settings.natPort && sa.state === 'MM_KE_R') {
    sa.floated = true;
    sa.local = local;
    sa.remote = remote;
  }
  const idPayload = ownIdPayload(sa);
  const HASH_R = authHash(sa, 'responder', payloadBody(idPayload));
  if (findAll(payloads, 'notify').some((n) => n.notifyType === NotifyType.INITIAL_CONTACT))
    ctx.initialContact(sa);
  sa.send(ctx, ExchangeType.IDENTITY_PROTECTION, 0, [idPayload, { kind: 'hash', data: HASH_R }], {
    encrypt: true,
    flight: sa.mainMode,
    awaitReply: false,
  });
  established(ctx, sa);
}

/**
 * Main mode picks the key by address, before any identity: every connection that could answer
 * the address shares it (the configuration checks so). Message 5 names the peer: the SA moves to
 * the connection configured for that identity, among those that accept the chosen transform.
 */
function chooseByIdentity(ctx: ProtocolContext, sa: IsakmpSa, identity: Identity): void {
  const current = sa.connection!;
  if (!current.peer.id || sameIdentity(current.peer.id, identity)) return;
  const better = ctx
    .forPeerIdentity(1, identity, sa.local, sa.remote)
    .find(
      (c) =>
        sameIdentity(c.peer.id!, identity) &&
        equalBytes(c.psk, current.psk) &&
        phase1Suites(c).some((suite) => sameSuite(suite, sa.suite!)),
    );
  if (better) ctx.assign(sa, better);
  else checkIdentity(sa, identity);
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/**
 * Handles a main mode message for an existing SA (messages 2 to 6), recorded for repeats once it
 * is accepted. Messages 5 and 6 are the first that can be verified: nothing changes before their
 * HASH_I or HASH_R does (a forged or garbled copy throws UnverifiedMessage and is dropped, and the
 * genuine message or its retransmission still counts). Messages 2 to 4 have nothing to verify.
 */
export function continueMainMode(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  message: DecodedMessage,
  datagram: Uint8Array,
  local: Endpoint,
  remote: Endpoint,
): void {
  if (sa.state === 'MM_KE_R' || sa.state === 'MM_AUTH_I') {
    const peerRole = sa.state === 'MM_KE_R' ? 'initiator' : 'responder';
    const { payloads, accept, id } = beforeVerification(() => {
      const opened = openAuthentication(sa, message);
      return { ...opened, id: verifyPeer(sa, opened.payloads, peerRole) };
    });
    sa.mainMode.received(datagram);
    // Our reply chains from this message's last block, so the IV advances before we answer.
    accept();
    if (peerRole === 'initiator') onMessage5(ctx, sa, id, payloads, local, remote);
    else onMessage6(ctx, sa, id);
    return;
  }
  const handler = { MM_SA_I: onMessage2, MM_KE_I: onMessage4, MM_SA_R: onMessage3 }[sa.state as 'MM_SA_I'];
  if (!handler) {
    ctx.log('debug', `main mode message in state ${sa.state} ignored`, sa);
    return;
  }
  // An encrypted message here is a typed error (the keys do not exist yet).
  const { payloads, accept } = sa.open(message);
  sa.mainMode.received(datagram);
  accept();
  handler(ctx, sa, payloads);
}

/** Message 5 or 6 opened: garbage after decryption means the keys differ, in main mode the PSK. */
function openAuthentication(sa: IsakmpSa, message: DecodedMessage): ReturnType<IsakmpSa['open']> {
  try {
    return sa.open(message);
  } catch (error) {
    if (!message.payloads && (error instanceof DecodeError || error instanceof ExchangeError))
      throw new ExchangeError(
        `message ${sa.role === 'responder' ? 5 : 6} does not decrypt to valid payloads: wrong pre-shared key?`,
        NotifyType.AUTHENTICATION_FAILED,
      );
    throw error;
  }
}

/**
 * A message that did not verify in main mode (a forged or garbled copy, or the keys differ): it
 * changes nothing, and is remembered so that a main mode that then times out names the likely
 * cause.
 */
export function unverifiedMainMode(ctx: ProtocolContext, sa: IsakmpSa, error: UnverifiedMessage): void {
  sa.unverified = { count: (sa.unverified?.count ?? 0) + 1, reason: failureOf(error.error).reason };
  ctx.logUnauthenticated(
    'warn',
    'main-mode-unverified',
    `main mode message from ${formatEndpoint(sa.remote)} dropped: ${sa.unverified.reason}`,
    sa.connection?.name,
  );
}

/**
 * Why a main mode got no further before its time ran out: messages that failed their integrity
 * check say a pre-shared key mismatch most likely (an authentication failure, not a timeout);
 * an initiator whose message 5 went unanswered may be one too (the responder drops what it
 * cannot verify).
 */
export function mainModeTimeout(sa: IsakmpSa): Failure {
  const peer = formatEndpoint(sa.remote);
  const unverified = sa.unverified;
  if (unverified) {
    const message = sa.role === 'responder' ? 5 : 6;
    return {
      cause: 'authentication',
      reason:
        `no valid main mode message ${message} from ${peer} in time: ${unverified.count} failed their ` +
        `integrity check (PSK mismatch?); the last: ${unverified.reason}`,
    };
  }
  const hint =
    sa.state === 'MM_AUTH_I'
      ? ': message 5 unanswered (a peer with another pre-shared key drops it: PSK mismatch?)'
      : '';
  return { cause: 'timeout', reason: `no answer from ${peer} in main mode (state ${sa.state})${hint}` };
}

// ---------------------------------------------------------------------------------------------
// Shared steps

/** Main mode messages are answered again this long after the SA is up (a lost message 6). */
export const MAIN_MODE_LINGER = 30;

function established(ctx: ProtocolContext, sa: IsakmpSa): void {
  sa.mainMode.linger();
  // What only main mode needed goes: an SA is kept for hours, and there may be many.
  ctx.arm(sa, sa.mainMode.timer, ctx.now + MAIN_MODE_LINGER);
  const { SKEYID_d, SKEYID_a, encryptionKey } = sa.keys!;
  sa.keys = sealKeys('IsakmpSaKeys', { SKEYID_d, SKEYID_a, encryptionKey: encryptionKey! });
  sa.protection!.finishPhase1(sa.keys.encryptionKey!);
  sa.state = 'ESTABLISHED';
  sa.dh = undefined;
  sa.gxi = sa.gxr = sa.SAi_b = sa.Ni_b = sa.Nr_b = undefined;
  ctx.ikeUp(sa);
}

/** A Diffie-Hellman step: our key pair and, with the peer's value, the shared secret. */
function compute(
  ctx: ProtocolContext,
  sa: IsakmpSa,
  peerPublic: Uint8Array | undefined,
  then: (result: DhJobResult) => void,
): void {
  const job = {
    group: sa.suite!.dh!.name,
    ...(sa.dh && madeBefore(sa.dh)),
    ...(peerPublic && { peerPublic }),
  };
  sa.computing = true;
  computeDh(
    ctx,
    sa,
    job,
    (error) => {
      sa.computing = false;
      failMainMode(ctx, sa, error);
    },
    (result) => {
      sa.computing = false;
      then(result);
    },
  );
}

/**
 * A main mode that cannot go on: the peer learns of an authentication failure (RFC 2408 5.1,
 * in the clear: there is nothing else yet), and the SA goes with a typed failure.
 */
export function failMainMode(ctx: ProtocolContext, sa: IsakmpSa, error: ExchangeError | DecodeError): void {
  const notify = notifyOf(error);
  if (notify === NotifyType.AUTHENTICATION_FAILED || notify === NotifyType.PAYLOAD_MALFORMED)
    ctx.emit(
      clearNotify(sa.CKY_I, sa.CKY_R, NotifyType.AUTHENTICATION_FAILED, sa.local, sa.remote, sa.floated),
    );
  ctx.ikeFailed(sa, failureOf(error));
}

function cookie(ctx: ProtocolContext): Uint8Array {
  for (;;) {
    const value = ctx.crypto.randomBytes(8);
    if (value.some((byte) => byte !== 0)) return value;
  }
}

/** IDii/IDir: the configured identity, else our address; remembered for status. */
function ownIdPayload(sa: IsakmpSa): Extract<Payload, { kind: 'id' }> {
  const identity = sa.connection!.local.id ?? addressIdentity(sa.local.address);
  sa.localId = formatIdentity(identity);
  return idPayloadFromIdentity(identity);
}

function learnVendorIds(ctx: ProtocolContext, sa: IsakmpSa, payloads: readonly Payload[]): void {
  const vids = findAll(payloads, 'vendor').map((v) => v.data);
  const { natT, dpd } = recognizeVendorIds(vids);
  sa.natT = natT;
  sa.probes = dpd;
  if (vids.length && ctx.logs('debug'))
    ctx.log('debug', `peer vendor IDs: ${vendorIdNames(vids).join(', ')}`, sa);
}

/** The responder answers with the one NAT-T VID it picked, and DPD. */
function answerVendorIds(sa: IsakmpSa): Payload[] {
  const vids: Uint8Array[] = [];
  if (sa.natT === 'rfc3947') vids.push(VendorId.NAT_T_RFC3947);
  else if (sa.natT === 'draft-03') vids.push(VendorId.NAT_T_DRAFT_03);
  else if (sa.natT === 'draft-02') vids.push(VendorId.NAT_T_DRAFT_02_N);
  vids.push(VendorId.DPD);
  return vids.map((data) => ({ kind: 'vendor', data }));
}

function natDetectionPayloads(ctx: ProtocolContext, sa: IsakmpSa): Payload[] {
  if (!sa.natT) return [];
  const draft = sa.natT !== 'rfc3947';
  const hash = (endpoint: Endpoint) =>
    natDetectionHash(ctx.crypto, sa.suite!.prf!.hash, sa.CKY_I, sa.CKY_R, endpoint);
  // Forced: our own address's hash can never match, so the peer sees us "behind a NAT" and both
  // ends float to the NAT-T port and encapsulate (what strongSwan's encap=yes does).
  const own = ctx.settings.forceEncapsulation
    ? ctx.crypto.randomBytes(sa.suite!.prf!.outputLength)
    : hash(sa.local);
  return [
    { kind: 'nat-d', draft, data: hash(sa.remote) },
    { kind: 'nat-d', draft, data: own },
  ];
}

function detect(ctx: ProtocolContext, sa: IsakmpSa, payloads: readonly Payload[]): void {
  if (!sa.natT) return;
  const received = findAll(payloads, 'nat-d').map((p) => p.data);
  if (received.length < 2) return;
  const hash = (endpoint: Endpoint) =>
    natDetectionHash(ctx.crypto, sa.suite!.prf!.hash, sa.CKY_I, sa.CKY_R, endpoint);
  const detected = detectNat(received, hash(sa.local), hash(sa.remote));
  // Object.assign, not a spread: a copy that begins with a spread gets a hidden class of its own.
  sa.nat = ctx.settings.forceEncapsulation ? Object.assign({}, detected, { forced: true }) : detected;
  if (detected.local || detected.remote)
    ctx.log('info', `NAT detected: ${detected.local ? 'we are' : 'the peer is'} behind a NAT`, sa);
  else if (ctx.settings.forceEncapsulation)
    ctx.log('info', 'no NAT, but ESP goes in UDP (forced by the kernel backend)', sa);
}

function deriveKeys(ctx: ProtocolContext, sa: IsakmpSa, gxy: Uint8Array): void {
  const suite = sa.suite!;
  sa.prf = prfOf(ctx.crypto, suite.prf!);
  const encryption = encryptionOf(ctx.crypto, suite.encr);
  const keys = derivePhase1PskKeys(sa.prf, {
    psk: sa.connection!.psk,
    Ni_b: sa.Ni_b!,
    Nr_b: sa.Nr_b!,
    gxy,
    CKY_I: sa.CKY_I,
    CKY_R: sa.CKY_R,
    encryptionKeyLength: encryption.keyMaterialLength,
  });
  sa.keys = keys;
  sa.protection = new Phase1Protection(encryption, keys.encryptionKey, sa.prf, sa.gxi!, sa.gxr!);
  if (ctx.settings.exportKeys) {
    ctx.event({
      type: 'ike-keys',
      ikeSa: sa.id,
      version: 1,
      spiI: sa.CKY_I,
      spiR: sa.CKY_R,
      encryption: suite.encr,
      encryptionKey: keys.encryptionKey,
    });
  }
}

/**
 * HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
 * HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
 */
function authHash(sa: IsakmpSa, of: 'initiator' | 'responder', ID_b: Uint8Array): Uint8Array {
  const parts =
    of === 'initiator' ? [sa.gxi!, sa.gxr!, sa.CKY_I, sa.CKY_R] : [sa.gxr!, sa.gxi!, sa.CKY_R, sa.CKY_I];
  return sa.prf!.compute(sa.keys!.SKEYID!, ...parts, sa.SAi_b!, ID_b);
}

/** Checks HASH_I or HASH_R; returns the ID payload it authenticated. */
function verifyPeer(
  sa: IsakmpSa,
  payloads: readonly Payload[],
  peerRole: 'initiator' | 'responder',
): IdPayload {
  const id = find(payloads, 'id');
  const hash = find(payloads, 'hash');
  if (!id || !hash)
    throw new ExchangeError(
      'authentication message without ID or HASH (wrong pre-shared key?)',
      NotifyType.PAYLOAD_MALFORMED,
    );
  if (!equalBytes(hash.data, authHash(sa, peerRole, payloadBody(id))))
    throw new ExchangeError(
      `HASH_${peerRole === 'initiator' ? 'I' : 'R'} mismatch: wrong pre-shared key?`,
      NotifyType.AUTHENTICATION_FAILED,
    );
  return id;
}

/** The identity an authenticated ID payload names. */
function identityOf(id: IdPayload): Identity {
  const identity = identityFromIdPayload(id);
  if (!identity)
    throw new ExchangeError(`ID type ${id.idType} is not supported`, NotifyType.INVALID_ID_INFORMATION);
  return identity;
}

function checkIdentity(sa: IsakmpSa, identity: Identity): void {
  const expected = sa.connection!.peer.id;
  if (expected && !sameIdentity(expected, identity))
    throw new ExchangeError(
      `peer identifies as '${formatIdentity(identity)}', expected '${formatIdentity(expected)}'`,
      NotifyType.INVALID_ID_INFORMATION,
    );
}
