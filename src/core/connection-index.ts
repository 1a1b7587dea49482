import { join, type Members, membersOf } from './collections.js';
import { type Connection, formatIdentity, type Identity } from './connection.js';
import type { Endpoint } from './endpoint.js';

/**
 * The configured connections indexed for what an input needs: by name, and by peer address for
 * a responder choosing among them, so that neither walks every connection (a gateway may have
 * thousands). Built once per configuration.
 */
export class ConnectionIndex {
  readonly list: readonly Connection[];
  readonly #byName = new Map<string, Connection>();
  /** Per version: connections with a concrete peer address, by it; and those with "any". */
  readonly #byPeer = new Map<string, Connection[]>();
  readonly #anyPeer = new Map<number, Connection[]>();
  readonly #anyByLocal = new Map<string, readonly Connection[]>();
  // A gateway with a connection per client has as many identities and share groups as
  // connections, each with one member: Members holds such a one as itself, not in an array.
  /** Per version: connections by the peer identity they require. */
  readonly #byPeerId = new Map<string, Members<Connection>>();
  /** Share groups (ProtocolContext.siblings): connections one IKE SA carries, by group key. */
  readonly #groupOf = new Map<Connection, string>();
  readonly #groups = new Map<string, Members<Connection>>();

  constructor(connections: readonly Connection[], groupKey: (connection: Connection) => string) {
    this.list = connections;
    for (const connection of connections) {
      this.#byName.set(connection.name, connection);
      const key = groupKey(connection);
      this.#groupOf.set(connection, key);
      this.#groups.set(key, join(this.#groups.get(key), connection));
      const version = connection.ike.version;
      if (connection.peer.address === 'any') push(this.#anyPeer, version, connection);
      else push(this.#byPeer, `${version}/${connection.peer.address}`, connection);
      if (connection.peer.id) {
        const id = identityKey(version, connection.peer.id);
        this.#byPeerId.set(id, join(this.#byPeerId.get(id), connection));
      }
    }
  }

  get(name: string): Connection | undefined {
    return this.#byName.get(name);
  }

  /** The share group's key of a configured connection. */
  groupKey(connection: Connection): string | undefined {
    return this.#groupOf.get(connection);
  }

  /** The connections of `connection`'s share group, itself first. */
  siblings(connection: Connection): Connection[] {
    const group = membersOf(this.#groups.get(this.#groupOf.get(connection) ?? ''));
    return [connection, ...group.filter((c) => c !== connection)];
  }

  /** Connections that may answer a first message from `remote` at `local`: exact peer first, then "any". */
  responderCandidates(version: 1 | 2, local: Endpoint, remote: Endpoint): readonly Connection[] {
    const any = this.#anyAt(version, local.address);
    const exact = this.#byPeer.get(`${version}/${remote.address}`);
    if (!exact) return any;
    return [...exact.filter((c) => fitsLocal(c, local)), ...any];
  }

  /** The "any" peers that may answer at a local address, computed once per address. */
  #anyAt(version: number, address: string): readonly Connection[] {
    const key = `${version}/${address}`;
    let list = this.#anyByLocal.get(key);
    if (!list) {
      list = (this.#anyPeer.get(version) ?? []).filter((c) => fitsLocal(c, { address, port: 0 }));
      this.#anyByLocal.set(key, list);
    }
    return list;
  }

  /**
   * Connections configured for exactly this peer identity that may serve `remote` at `local`
   * (the peer's address, or "any"): a gateway with a key or policy per client picks by identity.
   */
  forPeerIdentity(version: 1 | 2, identity: Identity, local: Endpoint, remote: Endpoint): Connection[] {
    return membersOf(this.#byPeerId.get(identityKey(version, identity))).filter(
      (c) => fitsLocal(c, local) && (c.peer.address === 'any' || c.peer.address === remote.address),
    );
  }
}

function fitsLocal(connection: Connection, local: Endpoint): boolean {
  return connection.local.address === undefined || connection.local.address === local.address;
}

/** Joined, not a template literal: one flat string per key rather than a tree of its parts. */
function identityKey(version: number, identity: Identity): string {
  return [version, identity.type, formatIdentity(identity).toLowerCase()].join('/');
}

function push<K>(map: Map<K, Connection[]>, key: K, connection: Connection): void {
  const list = map.get(key);
  if (list) list.push(connection);
  else map.set(key, [connection]);
}
