import { isIP } from 'node:net';
import { formatAddress, parseAddress } from '../core/address.js';
import { equalBytes } from '../wire/bytes.js';
import type { Connection, Identity, IkePolicy, IpsecPolicy } from '../core/connection.js';
import { parseTrafficSelector, type TrafficSelector } from '../core/traffic-selector.js';
import type { ProviderName } from '../crypto/provider.js';
import type { Cursor } from './cursor.js';
import { addressIdentity, parseIdentity } from './identity.js';
import { ikev1EspGaps, readIkePolicy, readIpsecPolicy } from './policies.js';
import { type PskSources, readPsk } from './psk.js';

/** connections.NAME entries: the two ends, the policies they use, the key and who starts. */

export const CONNECTION_KEYS = ['ikePolicy', 'ipsecPolicy', 'local', 'peer', 'psk', 'start'] as const;
export const LOCAL_KEYS = ['address', 'id', 'subnets', 'selectors'] as const;
export const PEER_KEYS = ['address', 'port', 'natPort', 'id', 'subnets', 'selectors'] as const;
export const SELECTOR_KEYS = ['subnet', 'protocol', 'port'] as const;
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const NAME_EXPECTED = "a name of up to 64 letters, digits, '.', '_' and '-'";

const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };
const EXPECT_IDENTITY =
  'an identity: an IP address, a host name (vpn.example.net or @vpn.example.net), user@example.net or keyid:...';
const EXPECT_SUBNET = 'a subnet (10.1.0.0/16), an address range (10.1.0.10-10.1.0.20) or an address';

export interface ConnectionContext {
  readonly crypto: ProviderName;
  readonly psk: PskSources;
  /** Normalised listen addresses, or undefined when they are themselves invalid. */
  readonly listen: readonly string[] | undefined;
  /** Named policies; a name mapped to undefined exists but is invalid (already reported). */
  readonly ikePolicies: ReadonlyMap<string, IkePolicy | undefined>;
  readonly ipsecPolicies: ReadonlyMap<string, IpsecPolicy | undefined>;
}

/** A selector as written, before the mode says what a missing subnet means. */
interface SelectorSpec {
  readonly at: Cursor;
  readonly subnet?: TrafficSelector;
  readonly protocol: number;
  readonly port?: number;
}

interface EndSpec {
  readonly address?: string;
  readonly id?: Identity;
  readonly port?: number;
  readonly natPort?: number;
  /** Undefined when neither subnets nor selectors were written. */
  readonly selectors?: readonly SelectorSpec[];
  /** Where to report a missing or mismatched selector list. */
  readonly selectorsAt: Cursor;
}

export function readConnection(at: Cursor, context: ConnectionContext): Connection | undefined {
  const before = at.problems.count;
  const name = at.name;
  if (!at.object(CONNECTION_KEYS, 'a connection object')) return undefined;

  const ike = policyReference(at.key('ikePolicy'), 'ikePolicies', context.ikePolicies, (c) =>
    readIkePolicy(c, name, context.crypto),
  );
  const ipsec = policyReference(at.key('ipsecPolicy'), 'ipsecPolicies', context.ipsecPolicies, (c) =>
    readIpsecPolicy(c, name, context.crypto),
  );
  const startAt = at.key('start');
  const start = startAt.present ? startAt.oneOf(['initiate', 'respond'] as const) : 'respond';
  const local = readEnd(at.key('local'), 'local');
  const peer = readEnd(at.key('peer'), 'peer');
  const pskAt = at.key('psk');
  const psk = pskAt.present
    ? readPsk(pskAt, context.psk)
    : pskAt.fail('a pre-shared key: a string, { "file": path } or { "env": "VARIABLE" }');

  if (peer?.address === 'any' && start === 'initiate') {
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
    const initiating = start === 'initiate';
    localSelectors = resolveSelectors(local, ipsec.mode, local.address, peerAddress, false, initiating);
    peerSelectors = resolveSelectors(
      peer,
      ipsec.mode,
      peerAddress,
      local.address,
      peer.address === 'any',
      false,
    );
    if (localSelectors && peerSelectors && ipsec.mode === 'tunnel') {
      checkTunnelFamilies(peer.selectorsAt, localSelectors, peerSelectors);
    }
  }
  if (at.problems.count > before) return undefined;
  if (!ike || !ipsec || !start || !local || !peer || !psk || !localSelectors || !peerSelectors)
    return undefined;
  const peerId =
    peer.id ?? (peer.address !== 'any' && peer.address ? addressIdentity(peer.address) : undefined);
  const localId = local.id ?? (local.address ? addressIdentity(local.address) : undefined);
  return {
    name,
    ike,
    ipsec,
    local: {
      ...(local.address !== undefined && { address: local.address }),
      ...(localId && { id: localId }),
      trafficSelectors: localSelectors,
    },
    peer: {
      address: peer.address ?? 'any',
      port: peer.port ?? 500,
      ...(peer.natPort !== undefined && { natPort: peer.natPort }),
      ...(peerId && { id: peerId }),
      trafficSelectors: peerSelectors,
    },
    psk,
    start,
  };
}

/**
 * The policy a connection names (reporting unknown names), or its inline policy object. A named
 * policy that is itself invalid has been reported already and gives undefined quietly.
 */
function policyReference<P>(
  at: Cursor,
  section: 'ikePolicies' | 'ipsecPolicies',
  policies: ReadonlyMap<string, P | undefined>,
  readInline: (at: Cursor) => P | undefined,
): P | undefined {
  const expected = `the name of an entry of ${section}`;
  if (typeof at.value === 'string') {
    if (!policies.has(at.value)) return at.fail(expected);
    return policies.get(at.value);
  }
  if (at.value instanceof Map) return readInline(at);
  return at.fail(`${expected}, or a policy object`);
}

function readEnd(at: Cursor, end: 'local' | 'peer'): EndSpec | undefined {
  const before = at.problems.count;
  const expected =
    end === 'local'
      ? 'an object { "address", "id", "subnets", "selectors" }'
      : 'an object { "address", ... }';
  if (end === 'local' && !at.present) return { selectorsAt: at.key('subnets') };
  if (!at.object(end === 'local' ? LOCAL_KEYS : PEER_KEYS, expected)) return undefined;

  const addressAt = at.key('address');
  let address: string | undefined;
  if (end === 'peer' && addressAt.value === 'any') address = 'any';
  else if (addressAt.present || end === 'peer') {
    const expectedAddress = end === 'peer' ? 'an IPv4 or IPv6 address, or "any"' : 'an IPv4 or IPv6 address';
    const text = addressAt.string(expectedAddress);
    if (text !== undefined && !isIP(text)) addressAt.fail(expectedAddress);
    else if (text !== undefined) address = formatAddress(parseAddress(text));
  }
  const idAt = at.key('id');
  let id: Identity | undefined;
  if (idAt.present) {
    const text = idAt.string(EXPECT_IDENTITY);
    id = text === undefined ? undefined : parseIdentity(text);
    if (text !== undefined && !id) idAt.fail(EXPECT_IDENTITY);
  }
  const portAt = at.key('port');
  const port = portAt.present ? portAt.integer(1, 65535) : undefined;
  const natPortAt = at.key('natPort');
  const natPort = natPortAt.present ? natPortAt.integer(1, 65535) : undefined;
  const selectors = readSelectors(at);
  if (at.problems.count > before) return undefined;
  const subnetsAt = at.key('subnets');
  const selectorsAt = subnetsAt.present || !at.key('selectors').present ? subnetsAt : at.key('selectors');
  return {
    ...(address !== undefined && { address }),
    ...(id && { id }),
    ...(port !== undefined && { port }),
    ...(natPort !== undefined && { natPort }),
    selectors,
    selectorsAt,
  };
}

/** `subnets` (strings) then `selectors` (objects with subnet, protocol and port), in that order. */
function readSelectors(at: Cursor): SelectorSpec[] | undefined {
  const subnetsAt = at.key('subnets');
  const selectorsAt = at.key('selectors');
  if (!subnetsAt.present && !selectorsAt.present) return undefined;
  const specs: SelectorSpec[] = [];
  if (subnetsAt.present) {
    for (const item of subnetsAt.list(`a list of subnets, each ${EXPECT_SUBNET}`) ?? []) {
      const subnet = readSubnet(item);
      if (subnet) specs.push({ at: item, subnet, protocol: 0 });
    }
  }
  if (selectorsAt.present) {
    const expected =
      'a list of selectors such as { "subnet": "10.1.0.0/16", "protocol": "udp", "port": 1701 }';
    for (const item of selectorsAt.list(expected) ?? []) {
      if (!item.object(SELECTOR_KEYS, 'a selector { "subnet", "protocol", "port" }')) continue;
      const protocolAt = item.key('protocol');
      let protocol: number | undefined = 0;
      if (typeof protocolAt.value === 'string' && PROTOCOLS[protocolAt.value.toLowerCase()] !== undefined) {
        protocol = PROTOCOLS[protocolAt.value.toLowerCase()];
      } else if (protocolAt.present) {
        protocol = protocolAt.integer(0, 255, '', ' (or "udp", "tcp", "icmp", "icmpv6", "sctp")');
      }
      const portAt = item.key('port');
      const port = portAt.present ? portAt.integer(0, 65535) : undefined;
      if (port && protocol === 0)
        portAt.fail('a port only together with a protocol ("udp", "tcp"...)', String(port));
      const subnetAt = item.key('subnet');
      const subnet = subnetAt.present ? readSubnet(subnetAt, protocol, port) : undefined;
      if (protocol === undefined || (portAt.present && port === undefined)) continue;
      if (subnetAt.present && !subnet) continue;
      specs.push({ at: item, ...(subnet && { subnet }), protocol, ...(port !== undefined && { port }) });
    }
  }
  return specs;
}

function readSubnet(at: Cursor, protocol = 0, port?: number): TrafficSelector | undefined {
  const text = at.string(EXPECT_SUBNET);
  if (text === undefined) return undefined;
  try {
    return parseTrafficSelector(text.trim(), protocol, port);
  } catch {
    return at.fail(EXPECT_SUBNET);
  }
}

/**
 * What the selectors of one end become. Tunnel mode needs subnets (a peer "any" may leave them
 * out: it gets what its client proposes, an empty list). Transport mode protects the hosts' own
 * traffic: no selectors means the host's address (an empty list when the address is not known
 * here), and a selector without a subnet means the host too; when the host's address is not known
 * (a responder without local.address, or an "any" peer), the selector spans the whole address
 * family: it accepts what the other end proposes for the host, as an empty list does, but keeps
 * the protocol and port. Initiators must know their own address, since they propose it.
 */
function resolveSelectors(
  end: EndSpec,
  mode: 'tunnel' | 'transport',
  host: string | undefined,
  otherHost: string | undefined,
  anyPeer: boolean,
  initiating: boolean,
): TrafficSelector[] | undefined {
  const before = end.selectorsAt.problems.count;
  const out: TrafficSelector[] = [];
  if (end.selectors === undefined) {
    if (mode === 'tunnel' && !anyPeer) {
      return end.selectorsAt.fail(`a list of subnets (or selectors): tunnel mode needs them`);
    }
    if (mode === 'transport' && host) out.push(parseTrafficSelector(host));
    return out;
  }
  const hostFamily = host ? isIP(host) : undefined;
  for (const spec of end.selectors) {
    if (spec.subnet) {
      if (mode === 'transport' && hostFamily && spec.subnet.start.length !== familyLength(hostFamily)) {
        spec.at.fail(
          `an IPv${hostFamily} selector like the host's address (transport mode protects the hosts' own traffic)`,
          `IPv${spec.subnet.start.length === 4 ? 4 : 6}`,
        );
      }
      out.push(spec.subnet);
    } else if (mode === 'tunnel') {
      spec.at.key('subnet').fail('a subnet: tunnel mode needs one in every selector');
    } else if (host) {
      out.push(parseTrafficSelector(host, spec.protocol, spec.port));
    } else if (initiating) {
      // An initiator proposes its selectors as they are: it must know its own address.
      spec.at.key('subnet').fail('a subnet, or local.address: an initiator proposes its own address');
    } else {
      const families = otherHost ? [isIP(otherHost)] : [4, 6];
      for (const family of families) {
        out.push(parseTrafficSelector(family === 4 ? '0.0.0.0/0' : '::/0', spec.protocol, spec.port));
      }
    }
  }
  return end.selectorsAt.problems.count > before ? undefined : out;
}

function familyLength(family: number): number {
  return family === 4 ? 4 : 16;
}

/** Each inner address family on one side of a tunnel needs the same family on the other. */
function checkTunnelFamilies(at: Cursor, local: TrafficSelector[], peer: TrafficSelector[]): void {
  if (!local.length || !peer.length) return;
  const families = (list: TrafficSelector[]) =>
    [...new Set(list.map((ts) => (ts.start.length === 4 ? 'IPv4' : 'IPv6')))].sort().join(' and ');
  const ours = families(local);
  const theirs = families(peer);
  if (ours !== theirs) at.fail(`${ours} subnets, like local's`, `${theirs} subnets`);
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
