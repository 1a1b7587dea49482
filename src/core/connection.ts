import { formatAddress, parseAddress } from './address.js';
import type { TrafficSelector } from './traffic-selector.js';
import type { ProposalSet, Suite } from './proposal.js';
import type { DhAlgorithm } from '../crypto/registry.js';
import { equalBytes } from '../wire/bytes.js';

/**
 * A connection as the engines see it: validated and normalised once, from peers.json or an
 * importer (src/config), then trusted. Immutable.
 */

/** An IKE identity (RFC 2407 4.6.2.1 / RFC 7296 3.5), in the form the ID payloads carry. */
export type Identity =
  | { readonly type: 'ipv4' | 'ipv6'; readonly address: Uint8Array }
  | { readonly type: 'fqdn' | 'user-fqdn' | 'key-id'; readonly value: string };

export type DpdAction = 'clear' | 'restart' | 'hold';

export interface Dpd {
  /** Seconds of silence from the peer before we send R-U-THERE / an empty INFORMATIONAL. */
  readonly delay: number;
  /** Seconds without an answer before the peer is declared dead. */
  readonly timeout: number;
  readonly action: DpdAction;
}

export interface Lifetime {
  /** Hard lifetime in seconds. */
  readonly seconds: number;
  /** Hard lifetime in kilobytes (child SAs only), if limited. */
  readonly kilobytes?: number;
  /** Rekey this long before the hard lifetime... */
  readonly rekeyMargin: number;
  /** ...minus a random part of up to this many seconds, so both ends do not rekey at once. */
  readonly rekeyFuzz: number;
}

export interface IkePolicy {
  readonly name: string;
  readonly version: 1 | 2;
  readonly mode: 'main';
  /** In preference order. */
  readonly proposals: readonly Suite[];
  /**
   * The proposals as written, each with every algorithm it names (IKEv2 offers one proposal of
   * several transforms per type for each). Absent: one per suite.
   */
  readonly offers?: readonly ProposalSet[];
  readonly lifetime: Lifetime;
  readonly dpd?: Dpd;
}

export interface IpsecPolicy {
  readonly name: string;
  readonly protocol: 'esp';
  /** What we propose as initiator. */
  readonly mode: IpsecMode;
  /** In preference order; without DH groups (PFS is `pfs`). */
  readonly proposals: readonly Suite[];
  /** As for IkePolicy.offers. */
  readonly offers?: readonly ProposalSet[];
  /** The quick mode / CREATE_CHILD_SA DH group, or undefined for no PFS. */
  readonly pfs?: DhAlgorithm;
  /**
   * As a responder, the modes and PFS choices we accept, in preference order (default: `mode`
   * and `pfs` alone). Wider for gateways that serve clients as they come, as isakmpd does.
   */
  readonly acceptModes?: readonly IpsecMode[];
  readonly acceptPfs?: readonly (DhAlgorithm | 'none')[];
  readonly lifetime: Lifetime;
}

export type IpsecMode = 'tunnel' | 'transport';

export interface LocalEnd {
  /** Our address; undefined means any local address (the runtime's listen addresses). */
  readonly address?: string;
  readonly id?: Identity;
  readonly trafficSelectors: readonly TrafficSelector[];
}

export interface PeerEnd {
  /** The peer's address, or 'any' for a responder that serves any client. */
  readonly address: string | 'any';
  readonly port: number;
  /** The peer's NAT-T port, where IKE floats to when a NAT is detected (RFC 3947): 4500. */
  readonly natPort?: number;
  /** The identity the peer must present; undefined accepts any (its address by default). */
  readonly id?: Identity;
  /** Empty for 'any' peers in transport mode: the peer's own address is the selector. */
  readonly trafficSelectors: readonly TrafficSelector[];
}

export interface Connection {
  readonly name: string;
  readonly ike: IkePolicy;
  readonly ipsec: IpsecPolicy;
  readonly local: LocalEnd;
  readonly peer: PeerEnd;
  /** The pre-shared key. Never logged: see connectionSummary. */
  readonly psk: Uint8Array;
  /** 'on-traffic': trap policies in the kernel; the first packet (an ACQUIRE) initiates. */
  readonly start: 'initiate' | 'respond' | 'on-traffic';
}

/** The identity of an IPv4 or IPv6 address: what an end presents when no id is configured. */
export function addressIdentity(address: string): Identity {
  const bytes = parseAddress(address);
  return { type: bytes.length === 4 ? 'ipv4' : 'ipv6', address: bytes };
}

export function formatIdentity(id: Identity): string {
  switch (id.type) {
    case 'ipv4':
    case 'ipv6':
      return formatAddress(id.address);
    default:
      return id.value;
  }
}

/** A reload's connections by name: what it adds, changes, removes and leaves as they are. */
export interface ConnectionDiff {
  readonly added: string[];
  readonly changed: string[];
  readonly removed: string[];
  readonly unchanged: string[];
}

export function diffConnections(before: readonly Connection[], after: readonly Connection[]): ConnectionDiff {
  const old = new Map(before.map((c) => [c.name, c]));
  const diff: ConnectionDiff = { added: [], changed: [], removed: [], unchanged: [] };
  for (const connection of after) {
    const previous = old.get(connection.name);
    const list = !previous
      ? diff.added
      : sameConnection(previous, connection)
        ? diff.unchanged
        : diff.changed;
    list.push(connection.name);
  }
  const names = new Set(after.map((c) => c.name));
  diff.removed.push(...before.filter((c) => !names.has(c.name)).map((c) => c.name));
  return diff;
}

/**
 * Whether two connections would negotiate exactly the same (the key included): what a reload
 * compares so that it leaves the SAs of unchanged connections alone.
 */
export function sameConnection(a: Connection, b: Connection): boolean {
  return sameValue(a, b);
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && equalBytes(a, b);
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  return (
    keysA.length === keysB.length &&
    keysA.every((key) => sameValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]))
  );
}

/** How messages name a policy: `ikePolicy 'x'`, or the connection's own inline one. */
export function policyLabel(kind: 'ikePolicy' | 'ipsecPolicy', policy: string, connection: string): string {
  return policy === connection ? `the ${kind} of connection '${connection}'` : `${kind} '${policy}'`;
}

/**
 * What connections must have in common for one IKE SA to carry child SAs of them all: the same
 * ends and identities (IKEv1 main mode picks the key by address; IKEv2 adds the IKE policy, since
 * the SA's algorithms and lifetime come from it). The same pre-shared key too: the core adds a
 * tag of it (IkeEngine), so that no key, not even as hex, sits in a long-lived string.
 */
export function sameAuthenticationKey(connection: Connection): string {
  const id = (identity: Connection['local']['id']) => (identity ? formatIdentity(identity) : '');
  return [
    connection.local.address ?? '',
    connection.peer.address,
    id(connection.local.id),
    id(connection.peer.id),
  ].join('\0');
}
