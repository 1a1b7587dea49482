import { EMPTY } from '../core/collections.js';
import type { Endpoint } from '../core/endpoint.js';
import { type ChildNegotiation, IkeSa } from '../core/ike-sa.js';
import type { ProtocolContext } from '../core/protocol.js';
import type { Retransmission } from '../core/retransmit.js';
import type { ChildSa, Role } from '../core/sa.js';
import type { DhJobResult } from '../crypto/dh-job.js';
import type { IkeSaKeys } from '../crypto/kdf-ikev2.js';
import type { Prf } from '../crypto/transforms.js';
import { toHex } from '../wire/bytes.js';
import { keptBytes } from '../wire/kept-bytes.js';
import type { Payload } from './codec.js';
import type { IkeRekey } from './ike-rekey.js';
import type { IkeKeys } from './keys.js';
import type { SkProtection } from './protection.js';

/**
 * An IKEv2 SA (RFC 7296): SPIs, keys, and the message window of section 2.3. Each side numbers
 * its own requests from 0; we keep one request of ours in flight (window size 1), resend it on
 * timeout, and answer a retransmitted request of the peer's with the response we cached.
 */

export type Ikev2State =
  | 'IKE_SA_INIT_I' // sent IKE_SA_INIT, awaiting its response
  | 'IKE_AUTH_I' // sent IKE_AUTH, awaiting its response
  | 'IKE_AUTH_R' // answered IKE_SA_INIT, awaiting IKE_AUTH
  | 'ESTABLISHED'
  | 'DELETED';

/** A request of ours in flight: what to resend, and what to do with the answer. */
export interface PendingRequest {
  readonly messageId: number;
  readonly exchangeType: number;
  /** The datagrams of the request (several when fragmented). */
  readonly datagrams: readonly Uint8Array[];
  readonly retransmission: Retransmission;
  /** Handles the peer's response (decrypted and decoded). */
  readonly onResponse: (payloads: readonly Payload[]) => void;
  /** No answer within the retransmission budget. */
  readonly onTimeout: () => void;
}

/** A child SA rekey of ours in flight: the child it replaces, our nonce, a crossing rekey of the peer's. */
export interface ChildRekey {
  readonly oldId: number;
  readonly Ni: Uint8Array;
  /** The peer rekeyed the same child SA meanwhile: the child SA we made answering it, and its nonces. */
  collision?: { readonly childId: number; readonly Ni: Uint8Array; readonly Nr: Uint8Array };
}

/**
 * A child SA we made answering the peer's rekey: its inbound SA is installed, its outbound one
 * waits until the peer deletes the old pair (then it surely has the new one: section 2.8), or
 * until `until`, so that nothing we send meets an SA the peer has not installed yet.
 */
export interface AwaitingDelete {
  readonly negotiation: ChildNegotiation;
  readonly child: ChildSa;
  /** Our outbound SPI of the child SA it replaces, which the peer's Delete names. */
  readonly oldSpiOut: number;
  readonly until: number;
}

/** A request waiting for the window (ours in flight), in order. */
export interface QueuedRequest {
  readonly send: () => void;
}

export class Ikev2Sa extends IkeSa {
  state: Ikev2State;
  readonly spiI: Uint8Array;
  /** Zeros until the responder's SPI is known (then set in place). */
  readonly spiR: Uint8Array;
  /** The nonces of IKE_SA_INIT, which IKE_AUTH signs and keys its first child from; dropped then. */
  Ni: Uint8Array | undefined;
  Nr: Uint8Array | undefined;
  /** Our Diffie-Hellman key pair (sealed) while IKE_SA_INIT runs, and its group's IKEv2 number. */
  dh: DhJobResult | undefined;
  dhGroup: number | undefined;
  /** The IKE_SA_INIT messages as sent, which the AUTH payloads sign; dropped once authenticated. */
  initRequest: Uint8Array | undefined;
  initResponse: Uint8Array | undefined;
  prf: Prf | undefined;
  keys: IkeSaKeys | undefined;
  protection: SkProtection | undefined;
  /** Both sides announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383). */
  fragmentation = false;
  /** A Diffie-Hellman computation is under way: the peer's messages wait for their retransmission. */
  computing = false;
  /** COOKIE the responder asked for (RFC 7296 2.6), sent again first in IKE_SA_INIT. */
  cookie: Uint8Array | undefined;
  /** Our rekey of this IKE SA, while it runs (section 2.18). */
  ikeRekey: IkeRekey | undefined;
  /** Our child SA rekeys in flight, and the peer's that crossed them (section 2.8.1). */
  childRekeys: readonly ChildRekey[] = EMPTY;
  /** Child SAs of the peer's rekeys, inbound only until the peer deletes the SAs they replace. */
  awaitingDelete: readonly AwaitingDelete[] = EMPTY;

  // --- the window (RFC 7296 section 2.3) ---------------------------------------------------------
  nextRequestId = 0;
  pending: PendingRequest | undefined;
  queue: readonly QueuedRequest[] = EMPTY;
  /** The message ID of the next request we expect from the peer. */
  peerNextId = 0;
  /** Our response to the peer's last request, resent when that request comes again. */
  lastResponse: { readonly messageId: number; readonly datagrams: readonly Uint8Array[] } | undefined;

  constructor(
    id: number,
    role: Role,
    spiI: Uint8Array,
    local: Endpoint,
    remote: Endpoint,
    createdAt: number,
  ) {
    super(id, 2, role, local, remote, createdAt);
    // Both SPIs copied into kept bytes (wire/kept-bytes.ts): the responder's spiI would otherwise
    // be a view that keeps the whole IKE_SA_INIT request alive.
    const spis = keptBytes(16);
    spis.set(spiI);
    this.spiI = spis.subarray(0, 8);
    this.spiR = spis.subarray(8);
    this.state = role === 'initiator' ? 'IKE_SA_INIT_I' : 'IKE_AUTH_R';
    // RFC 7296 2.4: liveness checks need no vendor ID.
    this.probes = true;
  }

  /**
   * Established: what only IKE_SA_INIT and IKE_AUTH needed goes (the two messages the AUTH
   * payloads sign and the nonces), about a kilobyte per SA that would otherwise stay for hours.
   */
  dropHandshake(): void {
    this.initRequest = this.initResponse = this.Ni = this.Nr = undefined;
  }

  get spiIHex(): string {
    return toHex(this.spiI);
  }

  get spiRHex(): string {
    return toHex(this.spiR);
  }

  /** We are the IKE SA's original initiator (the I flag of RFC 7296 3.1). */
  get originalInitiator(): boolean {
    return this.role === 'initiator';
  }
}

/** Nonces of 32 bytes: at least half the key size of every PRF we negotiate (RFC 7296 2.10). */
const NONCE_LENGTH = 32;

export function newNonce(ctx: ProtocolContext): Uint8Array {
  return ctx.crypto.randomBytes(NONCE_LENGTH);
}

/** An IKE SA SPI of ours: random, never zero (section 3.1). */
export function newIkeSpi(ctx: ProtocolContext): Uint8Array {
  for (;;) {
    const value = ctx.crypto.randomBytes(8);
    if (value.some((byte) => byte !== 0)) return value;
  }
}

/** The SA's keys are derived: kept, and offered to a debug key log when the runtime asked. */
export function keyed(ctx: ProtocolContext, sa: Ikev2Sa, derived: IkeKeys): void {
  sa.prf = derived.prf;
  sa.keys = derived.keys;
  sa.protection = derived.protection;
  if (!ctx.settings.exportKeys) return;
  const { SK_ei, SK_er, SK_ai, SK_ar } = derived.keys;
  ctx.event({
    type: 'ike-keys',
    ikeSa: sa.id,
    version: 2,
    spiI: sa.spiI,
    spiR: sa.spiR,
    encryption: sa.suite!.encr,
    integrity: sa.suite!.integ,
    SK_ei,
    SK_er,
    SK_ai,
    SK_ar,
  });
}
