import type { Endpoint } from '../core/endpoint.js';
import type { Retransmission } from '../core/retransmit.js';
import { IkeSa } from '../core/ike-sa.js';
import type { Role } from '../core/sa.js';
import type { DhJobResult } from '../crypto/dh-job.js';
import type { IkeSaKeys } from '../crypto/kdf-ikev2.js';
import type { Prf } from '../crypto/transforms.js';
import { toHex } from '../wire/bytes.js';
import type { Payload } from './codec.js';
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

/** A request waiting for the window (ours in flight), in order. */
export interface QueuedRequest {
  readonly send: () => void;
}

export class Ikev2Sa extends IkeSa {
  state: Ikev2State;
  spiI: Uint8Array;
  spiR: Uint8Array = new Uint8Array(8);
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

  // --- the window (RFC 7296 section 2.3) ---------------------------------------------------------
  nextRequestId = 0;
  pending: PendingRequest | undefined;
  readonly queue: QueuedRequest[] = [];
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
    this.spiI = spiI;
    this.state = role === 'initiator' ? 'IKE_SA_INIT_I' : 'IKE_AUTH_R';
    // RFC 7296 2.4: liveness checks need no vendor ID.
    this.probes = true;
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
