import { parseAddress } from '../core/address.js';
import type { Endpoint } from '../core/endpoint.js';
import type { CryptoProvider } from '../crypto/provider.js';
import type { HashName } from '../crypto/registry.js';
import { concat, equalBytes } from '../wire/bytes.js';
import { EncapsulationMode } from './constants.js';
import type { NatTVariant } from './vendor-ids.js';

/** NAT traversal in IKE (RFC 3947 and its drafts): detection hashes and the encapsulation modes. */

/** HASH(CKY-I | CKY-R | IP | Port), RFC 3947 section 3.2, with the negotiated phase 1 hash. */
export function natDetectionHash(
  provider: CryptoProvider,
  hash: HashName,
  CKY_I: Uint8Array,
  CKY_R: Uint8Array,
  endpoint: Endpoint,
): Uint8Array {
  const port = Uint8Array.of(endpoint.port >> 8, endpoint.port & 0xff);
  return provider.hash(hash, concat(CKY_I, CKY_R, parseAddress(endpoint.address), port));
}

/**
 * Which side is behind a NAT, from the peer's NAT-D payloads: the first hashes the address the
 * peer sent to (ours, as it saw it), the rest its own addresses (RFC 3947 section 3.2).
 */
export function detectNat(
  received: readonly Uint8Array[],
  expectedLocal: Uint8Array,
  expectedRemote: Uint8Array,
): { local: boolean; remote: boolean } {
  const [destination, ...sources] = received;
  return {
    local: destination === undefined ? false : !equalBytes(destination, expectedLocal),
    remote: sources.length > 0 && !sources.some((source) => equalBytes(source, expectedRemote)),
  };
}

export type ChildMode = 'tunnel' | 'transport';

/** The Encapsulation Mode attribute for a mode, UDP-encapsulated when a NAT is in the path. */
export function encapsulationMode(mode: ChildMode, udp: NatTVariant | undefined): number {
  if (!udp) return mode === 'tunnel' ? EncapsulationMode.TUNNEL : EncapsulationMode.TRANSPORT;
  if (udp === 'rfc3947')
    return mode === 'tunnel' ? EncapsulationMode.UDP_TUNNEL_RFC : EncapsulationMode.UDP_TRANSPORT_RFC;
  return mode === 'tunnel' ? EncapsulationMode.UDP_TUNNEL_DRAFT : EncapsulationMode.UDP_TRANSPORT_DRAFT;
}

/** The mode an Encapsulation Mode value means, and whether it asks for UDP encapsulation. */
export function decodeEncapsulationMode(value: number): { mode: ChildMode; udp: boolean } | undefined {
  switch (value) {
    case EncapsulationMode.TUNNEL:
      return { mode: 'tunnel', udp: false };
    case EncapsulationMode.TRANSPORT:
      return { mode: 'transport', udp: false };
    case EncapsulationMode.UDP_TUNNEL_RFC:
    case EncapsulationMode.UDP_TUNNEL_DRAFT:
      return { mode: 'tunnel', udp: true };
    case EncapsulationMode.UDP_TRANSPORT_RFC:
    case EncapsulationMode.UDP_TRANSPORT_DRAFT:
      return { mode: 'transport', udp: true };
    default:
      return undefined;
  }
}
