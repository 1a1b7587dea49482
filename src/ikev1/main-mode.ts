import { addressIdentity, type Connection, formatIdentity, policyLabel } from '../core/connection.js';
import type { Endpoint } from '../core/endpoint.js';
import { explainMismatch, formatSuite, selectSuite, type Suite } from '../core/proposal.js';
import { udpEncapsulated } from '../core/sa.js';
import { KeyExchange } from '../crypto/dh.js';
import { InvalidPublicValueError } from '../crypto/errors.js';
import { derivePhase1PskKeys } from '../crypto/kdf-ikev1.js';
import { Encryption, Prf } from '../crypto/transforms.js';
import { equalBytes } from '../wire/bytes.js';
import { DecodeError } from '../wire/errors.js';
import { type DecodedMessage, type Payload, payloadBody } from './codec.js';
import { ExchangeType, NotifyType } from './constants.js';
import { ExchangeError } from './errors.js';
import { identityFromIdPayload, idPayloadFromIdentity, sameIdentity } from './identification.js';
import { find, findAll, type Host, IsakmpSa, isakmpSpi } from './isakmp-sa.js';
import { detectNat, natDetectionHash } from './nat-t.js';
import { parsePhase1Sa, phase1Sa } from './proposals.js';
import { Phase1Protection } from './protection.js';
import { OWN_VENDOR_ID, recognizeVendorIds, VendorId } from './vendor-ids.js';

/**
 * Main mode with pre-shared keys (RFC 2409 section 5.4), both roles:
 *
 *   1 I->R  HDR, SA, VID*            2 R->I  HDR, SA, VID*
 *   3 I->R  HDR, KE, Ni, NAT-D*      4 R->I  HDR, KE, Nr, NAT-D*
 *   5 I->R  HDR*, IDii, HASH_I       6 R->I  HDR*, IDir, HASH_R
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

export function startMainMode(host: Host, connection: Connection, from: Endpoint, to: Endpoint): IsakmpSa {
  const sa = new IsakmpSa(host.nextId(), 'initiator', cookie(host), from, to, host.now);
  sa.connection = connection;
  sa.offered = phase1Suites(connection);
  if (sa.offered.length === 0) throw new RangeError(`${connection.name}: no IKEv1-capable IKE proposal`);
  const SAi = phase1Sa(sa.offered, connection.ike.lifetime.seconds);
  sa.SAi_b = payloadBody(SAi);
  host.index(sa, `i:${sa.cookies.slice(0, 16)}`);
  sa.send(host, ExchangeType.IDENTITY_PROTECTION, 0, [SAi, ...vendorIds(true, true)], {
    encrypt: false,
    flight: sa.mainMode,
    awaitReply: true,
  });
  host.log(
    'info',
    `initiating main mode to ${sa.describe()}, offering ${sa.offered.map(formatSuite).join(', ')}`,
    sa,
  );
  return sa;
}

function onMessage2(host: Host, sa: IsakmpSa, payloads: readonly Payload[]): void {
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
  learnVendorIds(host, sa, payloads);
  sa.ke = new KeyExchange(host.crypto, sa.suite.dh!);
  sa.gxi = sa.ke.publicKey;
  sa.Ni_b = host.crypto.randomBytes(NONCE_LENGTH);
  sa.state = 'MM_KE_I';
  sa.send(
    host,
    ExchangeType.IDENTITY_PROTECTION,
    0,
    [{ kind: 'ke', data: sa.gxi }, { kind: 'nonce', data: sa.Ni_b }, ...natDetectionPayloads(host, sa)],
    { encrypt: false, flight: sa.mainMode, awaitReply: true },
  );
}

function onMessage4(host: Host, sa: IsakmpSa, payloads: readonly Payload[]): void {
  const ke = find(payloads, 'ke');
  const nonce = find(payloads, 'nonce');
  if (!ke || !nonce) throw new ExchangeError('message 4 without KE or nonce', NotifyType.PAYLOAD_MALFORMED);
  sa.gxr = ke.data;
  sa.Nr_b = nonce.data;
  deriveKeys(host, sa);
  detect(host, sa, payloads);
  if (udpEncapsulated(sa.nat)) {
    // RFC 3947 section 4: the initiator moves to port 4500 for message 5 onwards.
    sa.floated = true;
    sa.local = { address: sa.local.address, port: host.natPort };
    sa.remote = { address: sa.remote.address, port: sa.connection!.peer.natPort ?? 4500 };
  }
  const idPayload = ownIdPayload(sa);
  const HASH_I = authHash(sa, 'initiator', payloadBody(idPayload));
  const message5: Payload[] = [idPayload, { kind: 'hash', data: HASH_I }];
  if (!host.hasOtherSaWith(sa)) {
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
  sa.send(host, ExchangeType.IDENTITY_PROTECTION, 0, message5, {
    encrypt: true,
    flight: sa.mainMode,
    awaitReply: true,
  });
}

function onMessage6(host: Host, sa: IsakmpSa, payloads: readonly Payload[]): void {
  verifyPeer(sa, payloads, 'responder');
  sa.mainMode.stop();
  sa.protection!.finishPhase1();
  host.established(sa);
}

// ---------------------------------------------------------------------------------------------
// Responder

/** Connections that may answer a main mode from `remote` at `local`, the exact address first. */
export function responderCandidates(
  connections: readonly Connection[],
  local: Endpoint,
  remote: Endpoint,
): Connection[] {
  const fits = (c: Connection) =>
    c.ike.version === 1 && (c.local.address === undefined || c.local.address === local.address);
  return [
    ...connections.filter((c) => fits(c) && c.peer.address === remote.address),
    ...connections.filter((c) => fits(c) && c.peer.address === 'any'),
  ];
}

/** Message 1: choose a connection and a transform, or explain why none fits. */
export function respondToMessage1(
  host: Host,
  message: DecodedMessage,
  local: Endpoint,
  remote: Endpoint,
): IsakmpSa {
  const payloads = message.payloads ?? [];
  const saPayload = find(payloads, 'sa');
  if (!saPayload) throw new ExchangeError('message 1 without SA', NotifyType.PAYLOAD_MALFORMED);
  const { offers, skipped } = parsePhase1Sa(saPayload);
  const candidates = responderCandidates(host.connections, local, remote);
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
    const sa = new IsakmpSa(host.nextId(), 'responder', message.header.CKY_I, local, remote, host.now);
    sa.connection = connection;
    sa.CKY_R = cookie(host);
    sa.suite = offer.suite;
    sa.offered = [offer.suite];
    sa.lifetimeSeconds = Math.min(
      offer.lifetime.seconds ?? DEFAULT_PHASE1_LIFETIME,
      connection.ike.lifetime.seconds,
    );
    sa.SAi_b = payloadBody(saPayload);
    learnVendorIds(host, sa, payloads);
    const proposal = saPayload.proposals.find((p) => p.transforms.includes(offer.transform))!;
    const reply: Payload = { ...saPayload, proposals: [{ ...proposal, transforms: [offer.transform] }] };
    host.index(sa, `p:${sa.cookies}`);
    host.index(sa, `h:${sa.cookies.slice(0, 16)}@${remote.address}:${remote.port}`);
    sa.send(
      host,
      ExchangeType.IDENTITY_PROTECTION,
      0,
      [reply, { kind: 'vendor', data: OWN_VENDOR_ID }, ...answerVendorIds(sa)],
      {
        encrypt: false,
        flight: sa.mainMode,
        awaitReply: true,
      },
    );
    host.log(
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

function onMessage3(host: Host, sa: IsakmpSa, payloads: readonly Payload[]): void {
  const ke = find(payloads, 'ke');
  const nonce = find(payloads, 'nonce');
  if (!ke || !nonce) throw new ExchangeError('message 3 without KE or nonce', NotifyType.PAYLOAD_MALFORMED);
  sa.gxi = ke.data;
  sa.Ni_b = nonce.data;
  sa.ke = new KeyExchange(host.crypto, sa.suite!.dh!);
  sa.gxr = sa.ke.publicKey;
  sa.Nr_b = host.crypto.randomBytes(NONCE_LENGTH);
  deriveKeys(host, sa);
  detect(host, sa, payloads);
  sa.state = 'MM_KE_R';
  sa.send(
    host,
    ExchangeType.IDENTITY_PROTECTION,
    0,
    [{ kind: 'ke', data: sa.gxr }, { kind: 'nonce', data: sa.Nr_b }, ...natDetectionPayloads(host, sa)],
    { encrypt: false, flight: sa.mainMode, awaitReply: true },
  );
}

function onMessage5(host: Host, sa: IsakmpSa, payloads: readonly Payload[]): void {
  verifyPeer(sa, payloads, 'initiator');
  const idPayload = ownIdPayload(sa);
  const HASH_R = authHash(sa, 'responder', payloadBody(idPayload));
  if (findAll(payloads, 'notify').some((n) => n.notifyType === NotifyType.INITIAL_CONTACT))
    host.initialContact(sa);
  sa.send(host, ExchangeType.IDENTITY_PROTECTION, 0, [idPayload, { kind: 'hash', data: HASH_R }], {
    encrypt: true,
    flight: sa.mainMode,
    awaitReply: false,
  });
  sa.protection!.finishPhase1();
  host.established(sa);
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/** Handles a main mode message for an existing SA (messages 2 to 6). */
export function continueMainMode(host: Host, sa: IsakmpSa, message: DecodedMessage): void {
  let opened: ReturnType<IsakmpSa['open']>;
  try {
    opened = sa.open(message);
  } catch (error) {
    // Garbage after decryption: the keys differ, and in main mode that means the PSK does.
    if (!message.payloads && (error instanceof DecodeError || error instanceof RangeError))
      throw new ExchangeError(
        `message ${sa.role === 'responder' ? 5 : 6} does not decrypt to valid payloads: wrong pre-shared key?`,
        NotifyType.AUTHENTICATION_FAILED,
      );
    throw error;
  }
  const { payloads, accept } = opened;
  const step: Partial<
    Record<IsakmpSa['state'], (host: Host, sa: IsakmpSa, payloads: readonly Payload[]) => void>
  > = {
    MM_SA_I: onMessage2,
    MM_KE_I: onMessage4,
    MM_AUTH_I: onMessage6,
    MM_SA_R: onMessage3,
    MM_KE_R: onMessage5,
  };
  const handler = step[sa.state];
  if (!handler) {
    host.log('debug', `main mode message in state ${sa.state} ignored`, sa);
    return;
  }
  // Our reply chains from this message's last block, so the IV advances before we answer. A
  // message that then fails verification ends the SA anyway.
  accept();
  handler(host, sa, payloads);
}

// ---------------------------------------------------------------------------------------------
// Shared steps

function cookie(host: Host): Uint8Array {
  for (;;) {
    const value = host.crypto.randomBytes(8);
    if (value.some((byte) => byte !== 0)) return value;
  }
}

/** IDii/IDir: the configured identity, else our address; remembered for status. */
function ownIdPayload(sa: IsakmpSa): Extract<Payload, { kind: 'id' }> {
  const identity = sa.connection!.local.id ?? addressIdentity(sa.local.address);
  sa.localId = formatIdentity(identity);
  return idPayloadFromIdentity(identity);
}

function learnVendorIds(host: Host, sa: IsakmpSa, payloads: readonly Payload[]): void {
  sa.peerVendorIds = recognizeVendorIds(findAll(payloads, 'vendor').map((v) => v.data));
  sa.natT = sa.peerVendorIds.natT;
  if (sa.peerVendorIds.names.length)
    host.log('debug', `peer vendor IDs: ${sa.peerVendorIds.names.join(', ')}`, sa);
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

function natDetectionPayloads(host: Host, sa: IsakmpSa): Payload[] {
  if (!sa.natT) return [];
  const draft = sa.natT !== 'rfc3947';
  const hash = (endpoint: Endpoint) =>
    natDetectionHash(host.crypto, sa.suite!.prf!.hash, sa.CKY_I, sa.CKY_R, endpoint);
  // Forced: our own address's hash can never match, so the peer sees us "behind a NAT" and both
  // ends float to the NAT-T port and encapsulate (what strongSwan's encap=yes does).
  const own = host.forceEncapsulation ? host.crypto.randomBytes(sa.suite!.prf!.outputLength) : hash(sa.local);
  return [
    { kind: 'nat-d', draft, data: hash(sa.remote) },
    { kind: 'nat-d', draft, data: own },
  ];
}

function detect(host: Host, sa: IsakmpSa, payloads: readonly Payload[]): void {
  if (!sa.natT) return;
  const received = findAll(payloads, 'nat-d').map((p) => p.data);
  if (received.length < 2) return;
  const hash = (endpoint: Endpoint) =>
    natDetectionHash(host.crypto, sa.suite!.prf!.hash, sa.CKY_I, sa.CKY_R, endpoint);
  const detected = detectNat(received, hash(sa.local), hash(sa.remote));
  sa.nat = host.forceEncapsulation ? { ...detected, forced: true } : detected;
  if (detected.local || detected.remote)
    host.log('info', `NAT detected: ${detected.local ? 'we are' : 'the peer is'} behind a NAT`, sa);
  else if (host.forceEncapsulation)
    host.log('info', 'no NAT, but ESP goes in UDP (forced by the kernel backend)', sa);
}

function deriveKeys(host: Host, sa: IsakmpSa): void {
  const suite = sa.suite!;
  const peerPublic = sa.role === 'initiator' ? sa.gxr! : sa.gxi!;
  let gxy: Uint8Array;
  try {
    gxy = sa.ke!.computeSharedSecret(peerPublic);
  } catch (error) {
    if (error instanceof InvalidPublicValueError)
      throw new ExchangeError(error.message, NotifyType.INVALID_KEY_INFORMATION);
    throw error;
  }
  sa.prf = new Prf(host.crypto, suite.prf!);
  const encryption = new Encryption(host.crypto, suite.encr);
  sa.keys = derivePhase1PskKeys(sa.prf, {
    psk: sa.connection!.psk,
    Ni_b: sa.Ni_b!,
    Nr_b: sa.Nr_b!,
    gxy,
    CKY_I: sa.CKY_I,
    CKY_R: sa.CKY_R,
    encryptionKeyLength: encryption.keyMaterialLength,
  });
  sa.protection = new Phase1Protection(encryption, sa.keys.encryptionKey, sa.prf, sa.gxi!, sa.gxr!);
  if (host.exportKeys) {
    host.emit({
      type: 'event',
      event: {
        type: 'ike-keys',
        ikeSa: sa.id,
        version: 1,
        spiI: sa.CKY_I,
        spiR: sa.CKY_R,
        encryption: suite.encr,
        encryptionKey: sa.keys.encryptionKey,
      },
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
  return sa.prf!.compute(sa.keys!.SKEYID, ...parts, sa.SAi_b!, ID_b);
}

function verifyPeer(sa: IsakmpSa, payloads: readonly Payload[], peerRole: 'initiator' | 'responder'): void {
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
  const identity = identityFromIdPayload(id);
  if (!identity)
    throw new ExchangeError(`ID type ${id.idType} is not supported`, NotifyType.INVALID_ID_INFORMATION);
  const expected = sa.connection!.peer.id;
  if (expected && !sameIdentity(expected, identity))
    throw new ExchangeError(
      `peer identifies as '${formatIdentity(identity)}', expected '${formatIdentity(expected)}'`,
      NotifyType.INVALID_ID_INFORMATION,
    );
  sa.remoteId = formatIdentity(identity);
}
