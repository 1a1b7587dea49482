import type { Endpoint } from './endpoint.js';
import type { Suite } from './proposal.js';
import type { TrafficSelector } from './traffic-selector.js';

/**
 * The SA records both engines keep and report. The engines own the protocol state; these are the
 * facts the runtime, the kernel backend and `status` need.
 */

export type Role = 'initiator' | 'responder';

export interface NatState {
  /** We are behind a NAT: we send keepalives. */
  readonly local: boolean;
  /** The peer is behind a NAT. */
  readonly remote: boolean;
  /** No NAT, but we claimed one so that ESP goes in UDP (a userspace data plane needs it). */
  readonly forced?: boolean;
}

/** Whether ESP of this IKE SA's children goes in UDP (RFC 3948): a NAT on either side, or forced. */
export function udpEncapsulated(nat: NatState): boolean {
  return nat.local || nat.remote || nat.forced === true;
}

export interface IkeSaInfo {
  readonly id: number;
  readonly connection: string;
  readonly version: 1 | 2;
  readonly role: Role;
  readonly state: string;
  /** Initiator and responder SPIs (IKEv1 cookies), hex. */
  readonly spiI: string;
  readonly spiR: string;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly suite?: Suite;
  readonly nat: NatState;
  readonly localId?: string;
  readonly remoteId?: string;
  readonly establishedAt?: number;
  readonly rekeyAt?: number;
  readonly expiresAt?: number;
}

export interface ChildSaKeys {
  readonly encrIn: Uint8Array;
  readonly integIn: Uint8Array;
  readonly encrOut: Uint8Array;
  readonly integOut: Uint8Array;
}

/** A negotiated ESP SA pair, what the kernel backend installs. */
export interface ChildSa {
  readonly id: number;
  readonly connection: string;
  readonly ikeSaId: number;
  readonly protocol: 'esp';
  readonly mode: 'tunnel' | 'transport';
  /** ESP in UDP (RFC 3948) on the IKE SA's (floated) ports. */
  readonly encapsulation: boolean;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  /** SPIs as 32-bit numbers: inbound is ours, outbound the peer's. */
  readonly spiIn: number;
  readonly spiOut: number;
  readonly localTs: readonly TrafficSelector[];
  readonly remoteTs: readonly TrafficSelector[];
  readonly suite: Suite;
  /** Sealed: renders as names and lengths only. */
  readonly keys: ChildSaKeys;
  readonly lifetime: { readonly seconds: number; readonly kilobytes?: number };
  readonly installedAt: number;
  readonly rekeyAt: number;
  readonly expiresAt: number;
}

export function formatSpi(spi: number): string {
  return spi.toString(16).padStart(8, '0');
}
