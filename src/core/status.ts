import { formatEndpoint } from './endpoint.js';
import type { FailureCause } from './failure.js';
import { formatSuite } from './proposal.js';
import { type ChildSa, formatSpi, type IkeSaInfo } from './sa.js';
import { formatTrafficSelector } from './traffic-selector.js';

/**
 * What `ike-node status` reports per connection, in the cloud VPN vocabulary: Active (a child SA
 * is installed), Pending (negotiating), Error (the last attempt failed), Down (nothing).
 */
export type ConnectionState = 'Active' | 'Down' | 'Pending' | 'Error';

export interface IkeSaStatus {
  readonly id: number;
  readonly version: 1 | 2;
  /** Initiator and responder SPIs (IKEv1 cookies), hex: what a capture or the peer's log shows. */
  readonly spiI: string;
  readonly spiR: string;
  readonly state: string;
  readonly role: string;
  readonly local: string;
  readonly remote: string;
  readonly localId?: string;
  readonly remoteId?: string;
  readonly algorithms?: string;
  readonly natDetected: boolean;
  readonly nat: { readonly local: boolean; readonly remote: boolean };
  readonly establishedAt?: number;
  readonly rekeyAt?: number;
  readonly expiresAt?: number;
}

export interface ChildSaStatus {
  readonly id: number;
  readonly ikeSaId: number;
  readonly protocol: 'esp';
  readonly spiIn: string;
  readonly spiOut: string;
  readonly mode: 'tunnel' | 'transport';
  readonly encapsulation: boolean;
  readonly localTs: string[];
  readonly remoteTs: string[];
  readonly algorithms: string;
  readonly lifetime: { readonly seconds: number; readonly kilobytes?: number };
  readonly installedAt: number;
  readonly rekeyAt: number;
  readonly expiresAt: number;
  /** From the kernel backend, when it counts (the memory backend does not). */
  readonly traffic?: TrafficCounters;
}

export interface TrafficCounters {
  readonly bytesIn: number;
  readonly packetsIn: number;
  readonly bytesOut: number;
  readonly packetsOut: number;
}

export interface ConnectionStatus {
  readonly name: string;
  /** The configured peer address, or "any". */
  readonly peer: string;
  readonly status: ConnectionState;
  /** Why the last attempt failed: the reason, and its typed cause. */
  readonly error?: string;
  readonly cause?: FailureCause;
  readonly ikeSas: IkeSaStatus[];
  readonly childSas: ChildSaStatus[];
}

export function ikeSaStatus(sa: IkeSaInfo): IkeSaStatus {
  return {
    id: sa.id,
    version: sa.version,
    spiI: sa.spiI,
    spiR: sa.spiR,
    state: sa.state,
    role: sa.role,
    local: formatEndpoint(sa.local),
    remote: formatEndpoint(sa.remote),
    ...(sa.localId && { localId: sa.localId }),
    ...(sa.remoteId && { remoteId: sa.remoteId }),
    ...(sa.suite && { algorithms: formatSuite(sa.suite) }),
    natDetected: sa.nat.local || sa.nat.remote,
    nat: sa.nat,
    ...(sa.establishedAt !== undefined && { establishedAt: sa.establishedAt }),
    ...(sa.rekeyAt !== undefined && { rekeyAt: sa.rekeyAt }),
    ...(sa.expiresAt !== undefined && { expiresAt: sa.expiresAt }),
  };
}

/** A child SA without its keys. */
export function childSaStatus(child: ChildSa): ChildSaStatus {
  return {
    id: child.id,
    ikeSaId: child.ikeSaId,
    protocol: child.protocol,
    spiIn: formatSpi(child.spiIn),
    spiOut: formatSpi(child.spiOut),
    mode: child.mode,
    encapsulation: child.encapsulation,
    localTs: child.localTs.map(formatTrafficSelector),
    remoteTs: child.remoteTs.map(formatTrafficSelector),
    algorithms: formatSuite(child.suite),
    lifetime: child.lifetime,
    installedAt: child.installedAt,
    rekeyAt: child.rekeyAt,
    expiresAt: child.expiresAt,
  };
}
