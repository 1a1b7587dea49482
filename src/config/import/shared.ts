import { isIP } from 'node:net';
import { NAME_PATTERN } from '../connections.js';

/**
 * What the three importers (isakmpd, swanctl, neutron) share: the result and error types, valid
 * unique peers.json names, protocol and service numbers, and the listen section.
 */

/** peers.json as plain JSON, ready for JSON.stringify. */
export type JsonObject = { [key: string]: unknown };

export interface ImportResult {
  readonly config: JsonObject;
  /** One line each: something the source says that peers.json expresses differently or not at all. */
  readonly warnings: string[];
}

/**
 * The source cannot be imported. `where` is `file:line` for the text formats and `file: json.path`
 * for Neutron's JSON; the message says what was expected there and what was found.
 */
export class ImportError extends Error {
  override readonly name = 'ImportError';
  constructor(
    readonly where: string,
    readonly expected: string,
    readonly got?: string,
  ) {
    super(`${where}: expected ${expected}${got === undefined ? '' : `, got ${got}`}`);
  }
}

/** `file:line`, the location form of the two text formats. */
export function lineOf(file: string, line: number): string {
  return `${file}:${line}`;
}

/**
 * Hands out peers.json names (NAME_PATTERN): characters a name may not hold become '-', and a name
 * already given gets "-2", "-3"... so that two sources never share an entry.
 */
export class Names {
  private readonly taken = new Set<string>();

  unique(wanted: string): string {
    const base = validName(wanted);
    let name = base;
    for (let n = 2; this.taken.has(name); n++) {
      const suffix = `-${n}`;
      name = `${base.slice(0, 64 - suffix.length)}${suffix}`;
    }
    this.taken.add(name);
    return name;
  }
}

export function validName(wanted: string): string {
  let name = wanted
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64)
    .replace(/[-.]+$/, '');
  if (!name) name = 'unnamed';
  if (!NAME_PATTERN.test(name)) throw new Error(`internal: '${name}' is not a valid name`);
  return name;
}

/**
 * IP protocols by name, as /etc/protocols has them (the names ipsec.conf's `proto` and
 * strongSwan's traffic selectors accept); peers.json takes the numbers or udp/tcp/icmp.
 */
const PROTOCOLS: Readonly<Record<string, number>> = {
  icmp: 1,
  igmp: 2,
  ipencap: 4,
  tcp: 6,
  udp: 17,
  ipv6: 41,
  gre: 47,
  esp: 50,
  ah: 51,
  icmp6: 58,
  'ipv6-icmp': 58,
  icmpv6: 58,
  ospf: 89,
  pim: 103,
  carp: 112,
  l2tp: 115,
  sctp: 132,
};

/** A protocol name or number (0-255), or undefined. */
export function protocolNumber(text: string): number | undefined {
  if (/^\d+$/.test(text)) {
    const number = Number(text);
    return number <= 255 ? number : undefined;
  }
  return PROTOCOLS[text.toLowerCase()];
}

/** How peers.json writes a protocol: its names for the common ones, else the number. */
export function protocolValue(protocol: number): string | number {
  const names: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };
  return names[protocol] ?? protocol;
}

/** Service names of /etc/services that VPN configurations use; numbers pass through. */
const SERVICES: Readonly<Record<string, number>> = {
  ftp: 21,
  ssh: 22,
  telnet: 23,
  smtp: 25,
  domain: 53,
  bootps: 67,
  bootpc: 68,
  http: 80,
  www: 80,
  ntp: 123,
  snmp: 161,
  bgp: 179,
  ldap: 389,
  https: 443,
  isakmp: 500,
  syslog: 514,
  ldaps: 636,
  openvpn: 1194,
  l2tp: 1701,
  l2f: 1701,
  pptp: 1723,
  radius: 1812,
  'radius-acct': 1813,
  'ipsec-nat-t': 4500,
  sip: 5060,
};

/** A port number (0-65535) or a service name, or undefined. */
export function portNumber(text: string): number | undefined {
  if (/^\d+$/.test(text)) {
    const number = Number(text);
    return number <= 65535 ? number : undefined;
  }
  return SERVICES[text.toLowerCase()];
}

/**
 * The listen section for the connections' ends (local: their local address, if any; peer: an
 * address or "any"). When every connection names its local address, ike-node listens on exactly
 * those, as the README advises (NAT detection hashes the address a datagram arrived on).
 * Otherwise the default, 0.0.0.0, serves IPv4 only: an IPv6 peer of a connection without a local
 * address needs "::" (which serves both), an IPv6 local address its own entry.
 */
export function listenSection(
  ends: readonly { local?: string | undefined; peer: string }[],
): { addresses: string[] } | undefined {
  const named = [...new Set(ends.map((end) => end.local).filter((a): a is string => a !== undefined))];
  if (ends.length && ends.every((end) => end.local !== undefined)) return { addresses: named };
  if (ends.some((end) => end.local === undefined && isIP(end.peer) === 6)) return { addresses: ['::'] };
  const v6 = named.filter((a) => isIP(a) === 6);
  return v6.length ? { addresses: ['0.0.0.0', ...v6] } : undefined;
}

/** peers.json sections in the order a reader expects them, empty ones left out. */
export function assemble(sections: {
  listen?: JsonObject | undefined;
  endpointGroups?: JsonObject;
  ikePolicies: JsonObject;
  ipsecPolicies: JsonObject;
  connections: JsonObject;
}): JsonObject {
  const config: JsonObject = {};
  if (sections.listen) config.listen = sections.listen;
  if (sections.endpointGroups && Object.keys(sections.endpointGroups).length)
    config.endpointGroups = sections.endpointGroups;
  config.ikePolicies = sections.ikePolicies;
  config.ipsecPolicies = sections.ipsecPolicies;
  config.connections = sections.connections;
  return config;
}
