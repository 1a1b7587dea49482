import { inspect } from 'node:util';
import { type Connection, formatIdentity, type Identity, type Lifetime } from '../core/connection.js';
import { formatSuite } from '../core/proposal.js';
import { formatTrafficSelector } from '../core/traffic-selector.js';
import { describeSecret } from '../crypto/secret.js';
import { sealPsk } from './psk.js';

/**
 * A connection in words, as `ike-node check`, status and logs show it: algorithms as proposal
 * keywords, selectors as CIDRs, and the pre-shared key as `<secret N bytes>`.
 */
export interface ConnectionSummary {
  readonly name: string;
  readonly start: Connection['start'];
  readonly ike: {
    readonly name: string;
    readonly version: 1 | 2;
    readonly mode: 'main';
    readonly proposals: string[];
    readonly lifetime: Lifetime;
    readonly dpd: Connection['ike']['dpd'] | false;
  };
  readonly ipsec: {
    readonly name: string;
    readonly protocol: 'esp';
    readonly mode: 'tunnel' | 'transport';
    readonly proposals: string[];
    readonly pfs: string;
    /** What a responder accepts: acceptModes, or the mode alone. */
    readonly acceptModes: readonly string[];
    /** What a responder accepts: acceptPfs, or pfs alone ("none" for no PFS). */
    readonly acceptPfs: readonly string[];
    readonly lifetime: Lifetime;
  };
  readonly local: {
    readonly address: string;
    /** The identity we present; "the local address" (of the SA) when none is written. */
    readonly id: string;
    readonly endpointGroup?: string;
    readonly trafficSelectors: string[];
  };
  readonly peer: {
    readonly address: string;
    readonly port: number;
    /** Where IKE floats to behind a NAT (RFC 3947): natPort, or 4500. */
    readonly natPort: number;
    /** The identity the peer must present; "any" when none is required. */
    readonly id: string;
    readonly endpointGroup?: string;
    readonly trafficSelectors: string[];
  };
  readonly psk: string;
}

/**
 * The endpoint groups a connection's ends were written with. Kept beside the connection, not in
 * it: the engines see traffic selectors only, and a reload compares connections by their content.
 */
const endpointGroups = new WeakMap<Connection, { local?: string | undefined; peer?: string | undefined }>();

export function recordEndpointGroups(
  connection: Connection,
  groups: { local?: string | undefined; peer?: string | undefined },
): void {
  endpointGroups.set(connection, groups);
}

/** RFC 3947's NAT-T port, where the engines float IKE when a peer names no natPort. */
const DEFAULT_NAT_PORT = 4500;

export function connectionSummary(connection: Connection): ConnectionSummary {
  const { ike, ipsec, local, peer } = connection;
  const id = (identity: Identity | undefined, otherwise: string) =>
    identity ? `${identity.type}:${formatIdentity(identity)}` : otherwise;
  const groups = endpointGroups.get(connection);
  const group = (name: string | undefined) => name !== undefined && { endpointGroup: name };
  return {
    name: connection.name,
    start: connection.start,
    ike: {
      name: ike.name,
      version: ike.version,
      mode: ike.mode,
      proposals: ike.proposals.map(formatSuite),
      lifetime: ike.lifetime,
      dpd: ike.dpd ?? false,
    },
    ipsec: {
      name: ipsec.name,
      protocol: ipsec.protocol,
      mode: ipsec.mode,
      proposals: ipsec.proposals.map(formatSuite),
      pfs: ipsec.pfs?.name ?? 'none',
      acceptModes: ipsec.acceptModes ?? [ipsec.mode],
      acceptPfs: (ipsec.acceptPfs ?? [ipsec.pfs ?? 'none']).map((pfs) => (pfs === 'none' ? pfs : pfs.name)),
      lifetime: ipsec.lifetime,
    },
    local: {
      address: local.address ?? 'any',
      id: id(local.id, 'the local address'),
      ...group(groups?.local),
      trafficSelectors: local.trafficSelectors.map(formatTrafficSelector),
    },
    peer: {
      address: peer.address,
      port: peer.port,
      natPort: peer.natPort ?? DEFAULT_NAT_PORT,
      id: id(peer.id, 'any'),
      ...group(groups?.peer),
      trafficSelectors: peer.trafficSelectors.map(formatTrafficSelector),
    },
    psk: describeSecret(connection.psk),
  };
}

/** What every sealed connection inherits: its views show the summary, never the key. */
const SEALED_CONNECTION = Object.create(Object.prototype, {
  toString: {
    value(this: Connection) {
      return `Connection ${this.name}`;
    },
  },
  toJSON: {
    value(this: Connection) {
      return connectionSummary(this);
    },
  },
  [inspect.custom]: {
    value(this: Connection, _depth: number, options: object, show: typeof inspect) {
      return `Connection ${show({ ...connectionSummary(this), psk: this.psk }, options)}`;
    },
  },
}) as object;

/**
 * Freezes a connection (its byte arrays aside: typed arrays cannot be frozen) and makes String(),
 * JSON.stringify and util.inspect show its summary, never the key. The views come from a shared
 * prototype, not closures per connection: a gateway may have a hundred thousand.
 */
export function sealConnection(connection: Connection): Connection {
  const sealed = Object.assign(Object.create(SEALED_CONNECTION) as Connection, connection, {
    psk: sealPsk(connection.psk),
  });
  const groups = endpointGroups.get(connection);
  if (groups) endpointGroups.set(sealed, groups);
  return deepFreeze(sealed);
}

/** Freezes plain objects and arrays reachable from `value`; typed arrays and shared registry rows stay as they are. */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || Object.isFrozen(value)) {
    return value;
  }
  for (const [key, child] of Object.entries(value)) {
    // Suites point into the transform registry, which is shared and not ours to freeze.
    if (!(key === 'encr' || key === 'integ' || key === 'prf' || key === 'dh' || key === 'pfs'))
      deepFreeze(child);
  }
  return Object.freeze(value);
}
