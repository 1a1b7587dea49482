import type { Connection } from '../core/connection.js';
import type { TrapPolicy } from './backend.js';

/** The trap policies of a connection that starts on traffic: its selectors, no SA yet. */
export function trapPolicy(connection: Connection, defaultLocalAddress: string): TrapPolicy {
  return {
    connection: connection.name,
    mode: connection.ipsec.mode,
    local: connection.local.address ?? defaultLocalAddress,
    remote: connection.peer.address,
    localTs: connection.local.trafficSelectors,
    remoteTs: connection.peer.trafficSelectors,
  };
}
