import { isIP } from 'node:net';
import { formatAddress, parseAddress } from '../core/address.js';
import { equalBytes } from '../wire/bytes.js';
import {
  type Connection,
  formatIdentity,
  type Identity,
  type IkePolicy,
  type IpsecPolicy,
  type LocalEnd,
} from '../core/connection.js';
import { formatTrafficSelector, type TrafficSelector } from '../core/traffic-selector.js';
import type { ProviderName } from '../crypto/provider.js';
import type { Cursor } from './cursor.js';
import { entryName } from './describe.js';
import { addressIdentity, parseIdentity } from './identity.js';
import { isJsonObject } from './json.js';
import { ikev1EspGaps, readIkePolicy, readIpsecPolicy } from './policies.js';
import { type PskSources, readPsk } from './psk.js';
import { PEERS_SCHEMA } from './schema.js';
import {
  checkTunnelFamilies,
  type EndpointGroups,
  readSelectors,
  resolveSelectors,
  type WrittenSelectors,
} from './selectors.js';
import { recordEndpointGroups } from './summary.js';

/** connections.NAME entries: the two ends, the policies they use, the key and who starts. */

/** What names of connections, policies and endpoint groups look like (the schema's, for the importers). */
export const NAME_PATTERN = PEERS_SCHEMA.pattern(PEERS_SCHEMA.resolve({ $ref: '#/$defs/name' }).pattern!);

export interface ConnectionContext {
  readonly crypto: ProviderName;
  readonly psk: PskSources;
  /** Normalised listen addresses, or undefined when they are themselves invalid. */
  readonly listen: readonly string[] | undefined;
  /** Named policies; a name mapped to undefined exists but is invalid (already reported). */
  readonly ikePolicies: ReadonlyMap<string, IkePolicy | undefined>;
  readonly ipsecPolicies: ReadonlyMap<string, IpsecPolicy | undefined>;
  readonly endpointGroups: EndpointGroups;
  /**
   * The identity of each address the ends name, made once for every connection with it: a
   * gateway's hundred thousand connections share their local address.
   */
  readonly addressIdentities: Map<string, Identity>;
  /**
   * Local ends and selector lists by what they say, so that equal ones are one object: a
   * gateway's clients usually share all of the local end and their selectors (the configuration
   * is frozen, so sharing is safe). Hundreds of bytes per connection at a hundred thousand.
   */
  readonly shared: Map<string, LocalEnd | readonly TrafficSelector[]>;
}

interface EndSpec {
  readonly address?: string;
  readonly id?: Identity;
  readonly port?: number;
  readonly natPort?: number;
  readonly selectors: WrittenSelectors;
}

export function readConnection(at: Cursor, context: ConnectionContext): Connection | undefined {
  if (!isJsonObject(at.value) || !at.valid) return undefined;
  const name = at.name;
  const ike = policyReference(at.key('ikePolicy'), 'ikePolicies', context.ikePolicies, (c) =>
    readIkePolicy(c, name, context.crypto),
  );
  const ipsec = policyReference(at.key('ipsecPolicy'), 'ipsecPolicies', context.ipsecPolicies, (c) =>
    readIpsecPolicy(c, name, context.crypto),
  );
  const startAt = at.key('start');
  const start = startAt.present ? startAt.choice(['initiate', 'respond', 'on-traffic'] as const) : 'respond';
  const local = readEnd(at.key('local'), 'local', context.endpointGroups);
  const peer = readEnd(at.key('peer'), 'peer', context.endpointGroups);
  const pskAt = at.key('psk');
  const psk = pskAt.present ? readPsk(pskAt, context.psk) : undefined;

  if (peer?.address === 'any' && start !== 'respond') {
    startAt.fail('"respond" (peer.address is "any": there is no one to initiate to)');
  }
  if (local && peer) checkAddresses(at, local, peer, context.listen);
  if (ike && ipsec && ike.version === 1) {
    const gaps = ikev1EspGaps(ipsec);
    if (gaps.length) {
      at.key('ipsecPolicy').fail(
        'ESP algorithms IKEv1 can negotiate (the IKE policy has version 1)',
        `${gaps.join(', ')}, which only IKEv2 negotiates`,
      );
    }
  }
  let localSelectors: TrafficSelector[] | undefined;
  let peerSelectors: TrafficSelector[] | undefined;
  if (local && peer && ipsec) {
    const peerAddress = peer.address === 'any' ? undefined : peer.address;
    const initiating = start !== 'respond';
    localSelectors = resolveSelectors(
      local.selectors,
      ipsec.mode,
      local.address,
      peerAddress,
      false,
      initiating,
    );
    peerSelectors = resolveSelectors(
      peer.selectors,
      ipsec.mode,
      peerAddress,
      local.address,
      peer.address === 'any',
      false,
    );
    if (localSelectors && peerSelectors && ipsec.mode === 'tunnel') {
      checkTunnelFamilies(peer.selectors.at, localSelectors, peerSelectors);
    }
  }
  if (at.hasProblems()) return undefined;
  if (!ike || !ipsec || !start || !local || !peer || !psk || !localSelectors || !peerSelectors)
    return undefined;
  const identityOf = (address: string) => {
    let identity = context.addressIdentities.get(address);
    if (!identity) context.addressIdentities.set(address, (identity = addressIdentity(address)));
    return identity;
  };
  const peerId = peer.id ?? (peer.address !== 'any' && peer.address ? identityOf(peer.address) : undefined);
  const localId = local.id ?? (local.address ? identityOf(local.address) : undefined);
  const connection: Connection = {
    name,
    ike,
    ipsec,
    local: sharedLocalEnd(context.shared, local.address, localId, localSelectors),
    peer: {
      address: peer.address ?? 'any',
      port: peer.port ?? 500,
      ...(peer.natPort !== undefined && { natPort: peer.natPort }),
      ...(peerId && { id: peerId }),
      trafficSelectors: sharedSelectors(context.shared, peerSelectors),
    },
    psk,
    start,
  };
  if (local.selectors.endpointGroup !== undefined || peer.selectors.endpointGroup !== undefined) {
    recordEndpointGroups(connection, {
      local: local.selectors.endpointGroup,
      peer: peer.selectors.endpointGroup,
    });
  }
  return connection;
}

/** One list for equal selector lists (see ConnectionContext.shared). */
function sharedSelectors(
  shared: ConnectionContext['shared'],
  list: readonly TrafficSelector[],
  written = list.map(formatTrafficSelector),
): readonly TrafficSelector[] {
  const key = JSON.stringify(['selectors', ...written]);
  let known = shared.get(key) as readonly TrafficSelector[] | undefined;
  if (!known) shared.set(key, (known = list));
  return known;
}

/** One object for equal local ends (see ConnectionContext.shared). */
function sharedLocalEnd(
  shared: ConnectionContext['shared'],
  address: string | undefined,
  id: Identity | undefined,
  list: readonly TrafficSelector[],
): LocalEnd {
  const written = list.map(formatTrafficSelector);
  const key = JSON.stringify([
    'end',
    address ?? null,
    id?.type ?? null,
    id ? formatIdentity(id) : null,
    ...written,
  ]);
  let end = shared.get(key) as LocalEnd | undefined;
  if (!end) shared.set(key, (end = localEnd(address, id, sharedSelectors(shared, list, written))));
  return end;
}

/**
 * Our end, built with its fields in one order. An object literal that begins with a spread gets
 * a hidden class of its own in V8 (≈ 200 bytes per connection, measured with a heap snapshot of
 * 20,000 connections): a gateway may have a hundred thousand.
 */
function localEnd(
  address: string | undefined,
  id: Identity | undefined,
  trafficSelectors: readonly TrafficSelector[],
): LocalEnd {
  if (address === undefined) return id ? { id, trafficSelectors } : { trafficSelectors };
  return id ? { address, id, trafficSelectors } : { address, trafficSelectors };
}

/**
 * The policy a connection names (reporting unknown names, with the known ones), or its inline
 * policy object. A named policy that is itself invalid has been reported already and gives
 * undefined quietly; so does a value of the wrong type (the schema reported it).
 */
function policyReference<P>(
  at: Cursor,
  section: 'ikePolicies' | 'ipsecPolicies',
  policies: ReadonlyMap<string, P | undefined>,
  readInline: (at: Cursor) => P | undefined,
): P | undefined {
  if (isJsonObject(at.value)) return readInline(at);
  const name = at.string();
  if (name === undefined) return undefined;
  if (!policies.has(name)) {
    return at.fail(entryName(section, policies.keys()));
  }
  return policies.get(name);
}

function readEnd(at: Cursor, end: 'local' | 'peer', groups: EndpointGroups): EndSpec | undefined {
  if (end === 'local' && !at.present) return { selectors: { at: at.key('subnets'), ok: true } };
  if (!isJsonObject(at.value) || !at.valid) return undefined;

  const addressAt = at.key('address');
  const text = addressAt.string();
  let address: string | undefined;
  if (end === 'peer' && text === 'any') address = 'any';
  else if (text !== undefined && isIP(text)) address = formatAddress(parseAddress(text));
  else if (text !== undefined) addressAt.fail();
  const idAt = at.key('id');
  const idText = idAt.string();
  const id = idText === undefined ? undefined : parseIdentity(idText);
  if (idText !== undefined && !id) idAt.fail();
  const port = end === 'peer' ? at.key('port').number() : undefined;
  const natPort = end === 'peer' ? at.key('natPort').number() : undefined;
  const selectors = readSelectors(at, groups);
  if (at.hasProblems() || !selectors.ok) return undefined;
  return {
    ...(address !== undefined && { address }),
    ...(id && { id }),
    ...(port !== undefined && { port }),
    ...(natPort !== undefined && { natPort }),
    selectors,
  };
}

/** Outer addresses: one family for both ends, and one our listen addresses cover. */
function checkAddresses(
  at: Cursor,
  local: EndSpec,
  peer: EndSpec,
  listen: readonly string[] | undefined,
): void {
  const localFamily = local.address ? isIP(local.address) : 0;
  const peerFamily = peer.address && peer.address !== 'any' ? isIP(peer.address) : 0;
  if (localFamily && peerFamily && localFamily !== peerFamily) {
    at.key('peer')
      .key('address')
      .fail(`an IPv${localFamily} address, like local.address`, `an IPv${peerFamily} address`);
    return;
  }
  if (!listen) return;
  if (local.address && !listenCovers(listen, localFamily, local.address)) {
    at.key('local')
      .key('address')
      .fail(`one of listen.addresses (${listen.join(', ')}), or an address that 0.0.0.0 or :: covers`);
  } else if (!local.address && peerFamily && !listenCovers(listen, peerFamily)) {
    at.key('peer')
      .key('address')
      .fail(
        `an address of a family listen.addresses serve (${listen.join(', ')})`,
        `an IPv${peerFamily} address`,
      );
  }
}

/**
 * Whether we receive on `address` (or, without one, on some address of `family`). "::" is taken
 * to cover IPv4 too, as a dual-stack socket does.
 */
function listenCovers(listen: readonly string[], family: number, address?: string): boolean {
  return listen.some((entry) => {
    if (entry === '::') return true;
    if (address) return entry === address || (entry === '0.0.0.0' && family === 4);
    return isIP(entry) === family;
  });
}

/**
 * IKEv1 main mode with pre-shared keys must choose the key before it learns the peer's identity,
 * so it finds the connection by address: two IKEv1 connections between the same addresses with
 * different keys are ambiguous. With the same key they are siblings, whose subnets share one ISAKMP
 * SA (as the engine's quick mode expects). A connection without local.address uses any of ours.
 */
export function checkAmbiguousPairs(entries: readonly { at: Cursor; connection: Connection }[]): void {
  const seen: { at: Cursor; connection: Connection }[] = [];
  for (const entry of entries) {
    const { local, peer, ike } = entry.connection;
    if (ike.version !== 1 || peer.address === 'any') continue;
    const clash = seen.find(
      (other) =>
        other.connection.peer.address === peer.address &&
        (other.connection.local.address === undefined ||
          local.address === undefined ||
          other.connection.local.address === local.address) &&
        !equalBytes(other.connection.psk, entry.connection.psk),
    );
    if (clash) {
      entry.at
        .key('peer')
        .key('address')
        .fail(
          'a (local address, peer address) pair that no IKEv1 connection with another pre-shared key uses (main mode picks the key by address, before any identity: use the same key, or list all subnets in one connection)',
          `${JSON.stringify(peer.address)}, as connections.${clash.connection.name} has`,
        );
    } else {
      seen.push(entry);
    }
  }
}
