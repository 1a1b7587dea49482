import { isIP } from 'node:net';
import { parseTrafficSelector, type TrafficSelector } from '../core/traffic-selector.js';
import type { Cursor } from './cursor.js';
import { entryName } from './describe.js';

/**
 * Traffic selectors as written: `subnets`, a named `endpointGroup` (a list of subnets defined
 * once under endpointGroups, as cloud VPN services name them) and `selectors` objects; then what
 * they mean once the IPsec mode is known.
 */

/** Protocol names a selector may use (the schema lists the same names). */
const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };

/** endpointGroups by name; a name mapped to undefined exists but is invalid (already reported). */
export type EndpointGroups = ReadonlyMap<string, readonly TrafficSelector[] | undefined>;

/** A selector as written, before the mode says what a missing subnet means. */
export interface SelectorSpec {
  /** Where to report a problem with this selector. */
  readonly at: Cursor;
  readonly subnet?: TrafficSelector;
  readonly protocol: number;
  readonly port?: number;
}

export interface WrittenSelectors {
  /** Undefined when neither subnets, endpointGroup nor selectors were written. */
  readonly specs?: readonly SelectorSpec[];
  /** Where to report missing or mismatched selectors. */
  readonly at: Cursor;
  /** The endpoint group's name, when the end uses one. */
  readonly endpointGroup?: string;
  /** False when something was wrong (and reported), here or in the endpoint group used. */
  readonly ok: boolean;
}

export function readEndpointGroups(at: Cursor): Map<string, TrafficSelector[] | undefined> {
  const groups = new Map<string, TrafficSelector[] | undefined>();
  for (const group of at.entries()) {
    const subnets = group.items().map((item) => readSubnet(item));
    const valid = !group.hasProblems() && subnets.every((subnet) => subnet !== undefined);
    groups.set(group.name, valid ? (subnets as TrafficSelector[]) : undefined);
  }
  return groups;
}

/** `subnets` or `endpointGroup` (not both), then `selectors` (objects with subnet, protocol and port). */
export function readSelectors(end: Cursor, groups: EndpointGroups): WrittenSelectors {
  const subnetsAt = end.key('subnets');
  const groupAt = end.key('endpointGroup');
  const selectorsAt = end.key('selectors');
  const written = [subnetsAt, groupAt, selectorsAt].filter((c) => c.present);
  const at = written[0] ?? subnetsAt;
  if (!written.length) return { at, ok: true };
  let ok = true;
  const specs: SelectorSpec[] = [];
  for (const item of subnetsAt.items()) {
    const subnet = readSubnet(item);
    if (subnet) specs.push({ at: item, subnet, protocol: 0 });
    else ok = false;
  }
  const groupName = groupAt.string();
  if (groupName !== undefined) {
    if (subnetsAt.present) {
      groupAt.fail('either subnets or endpointGroup, not both', 'both');
      ok = false;
    }
    if (!groups.has(groupName)) {
      groupAt.fail(entryName('endpointGroups', groups.keys()));
      ok = false;
    } else if (!subnetsAt.present) {
      const subnets = groups.get(groupName);
      // Problems inside the group are reported there, once, not for each connection using it.
      if (subnets) specs.push(...subnets.map((subnet) => ({ at: groupAt, subnet, protocol: 0 })));
      else ok = false;
    }
  }
  for (const item of selectorsAt.items()) {
    const spec = readSelector(item);
    if (spec) specs.push(spec);
    else ok = false;
  }
  ok &&= !subnetsAt.hasProblems() && !groupAt.hasProblems() && !selectorsAt.hasProblems();
  return { specs, at, ok, ...(groupName !== undefined && { endpointGroup: groupName }) };
}

function readSelector(item: Cursor): SelectorSpec | undefined {
  const protocolAt = item.key('protocol');
  const protocolValue = protocolAt.value;
  let protocol: number | undefined = 0;
  if (typeof protocolValue === 'string')
    protocol = PROTOCOLS[protocolAt.choice(Object.keys(PROTOCOLS)) ?? ''];
  else if (protocolAt.present) protocol = protocolAt.number();
  const portAt = item.key('port');
  const port = portAt.number();
  if (port && protocol === 0)
    portAt.fail('a port only together with a protocol ("udp", "tcp"...)', String(port));
  const subnetAt = item.key('subnet');
  const subnet = subnetAt.present ? readSubnet(subnetAt, protocol, port) : undefined;
  if (protocol === undefined || item.hasProblems()) return undefined;
  return { at: item, ...(subnet && { subnet }), protocol, ...(port !== undefined && { port }) };
}

export function readSubnet(at: Cursor, protocol = 0, port?: number): TrafficSelector | undefined {
  const text = at.string();
  if (text === undefined) return undefined;
  try {
    return parseTrafficSelector(text.trim(), protocol, port);
  } catch {
    return at.fail();
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
export function resolveSelectors(
  written: WrittenSelectors,
  mode: 'tunnel' | 'transport',
  host: string | undefined,
  otherHost: string | undefined,
  anyPeer: boolean,
  initiating: boolean,
): TrafficSelector[] | undefined {
  let ok = true;
  const out: TrafficSelector[] = [];
  if (written.specs === undefined) {
    if (mode === 'tunnel' && !anyPeer) {
      return written.at.fail('a list of subnets (or an endpointGroup, or selectors): tunnel mode needs them');
    }
    if (mode === 'transport' && host) out.push(parseTrafficSelector(host));
    return out;
  }
  const hostFamily = host ? isIP(host) : undefined;
  for (const spec of written.specs) {
    if (spec.subnet) {
      if (mode === 'transport' && hostFamily && spec.subnet.start.length !== familyLength(hostFamily)) {
        spec.at.fail(
          `an IPv${hostFamily} selector like the host's address (transport mode protects the hosts' own traffic)`,
          `IPv${spec.subnet.start.length === 4 ? 4 : 6}`,
        );
        ok = false;
      }
      out.push(spec.subnet);
    } else if (mode === 'tunnel') {
      spec.at.key('subnet').fail('a subnet: tunnel mode needs one in every selector');
      ok = false;
    } else if (host) {
      out.push(parseTrafficSelector(host, spec.protocol, spec.port));
    } else if (initiating) {
      // An initiator proposes its selectors as they are: it must know its own address.
      spec.at.key('subnet').fail('a subnet, or local.address: an initiator proposes its own address');
      ok = false;
    } else {
      const families = otherHost ? [isIP(otherHost)] : [4, 6];
      for (const family of families) {
        out.push(parseTrafficSelector(family === 4 ? '0.0.0.0/0' : '::/0', spec.protocol, spec.port));
      }
    }
  }
  return ok ? out : undefined;
}

function familyLength(family: number): number {
  return family === 4 ? 4 : 16;
}

/** Each inner address family on one side of a tunnel needs the same family on the other. */
export function checkTunnelFamilies(at: Cursor, local: TrafficSelector[], peer: TrafficSelector[]): void {
  if (!local.length || !peer.length) return;
  const families = (list: TrafficSelector[]) =>
    [...new Set(list.map((ts) => (ts.start.length === 4 ? 'IPv4' : 'IPv6')))].sort().join(' and ');
  const ours = families(local);
  const theirs = families(peer);
  if (ours !== theirs) at.fail(`${ours} subnets, like local's`, `${theirs} subnets`);
}
