import { formatAddress, parseAddress, prefixMask } from '../../core/address.js';
import {
  LITTLE_ENDIAN,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  concat,
  decodeAttributes,
  encodeAttribute,
  view,
  type NetlinkChannel,
  type NetlinkMessage,
  NetlinkParseError,
} from './message.js';

/**
 * rtnetlink (NETLINK_ROUTE): what the userspace ESP backend needs to bring up its TUN device:
 * find a link, set it up with an MTU, give it an address, route prefixes through it. Each message
 * has a pure encoder (tested byte for byte) and the Rtnetlink class sends them over a channel.
 */

/** Message types (linux/rtnetlink.h). */
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** Interface flags (linux/if.h). */
export const IFF_UP = 0x1;

/** Link attributes (linux/if_link.h). */
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_TXQLEN = 13;

/** Address attributes and flags (linux/if_addr.h). */
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_F_NODAD = 0x02;

/** Route attributes, metrics, tables, protocols, scopes and types (linux/rtnetlink.h). */
export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_METRICS = 8;
export const RTA_TABLE = 15;
export const RTAX_MTU = 2;
export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_MAIN = 254;
export const RTPROT_UNSPEC = 0;
export const RTPROT_STATIC = 4;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_NOWHERE = 255;
export const RTN_UNSPEC = 0;
export const RTN_UNICAST = 1;

/** sizeof(struct ifinfomsg), sizeof(struct ifaddrmsg), sizeof(struct rtmsg). */
const IFINFOMSG_LEN = 16;
const IFADDRMSG_LEN = 8;
const RTMSG_LEN = 12;

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  /** IFF_* flags (IFF_UP = 1). */
  readonly flags: number;
  readonly up: boolean;
  readonly mtu: number | undefined;
}

export interface LinkSettings {
  /** Sets or clears IFF_UP; absent leaves it as it is. */
  readonly up?: boolean;
  readonly mtu?: number;
  /** The transmit queue's length in packets (IFLA_TXQLEN; `ip link set ... txqueuelen`). */
  readonly txQueueLength?: number;
}

export interface AddressSpec {
  /** The link's ifindex. */
  readonly index: number;
  /** The local address and its prefix: '198.51.100.1/32', '2001:db8:1::1/128'. */
  readonly address: string;
  /** The other end of a point-to-point link (IFA_ADDRESS); the local address itself by default. */
  readonly peer?: string;
  /** IPv6: usable at once, without duplicate address detection. */
  readonly noDad?: boolean;
}

export interface RouteSpec {
  /** The destination prefix, with no host bits set: '203.0.113.0/24', '2001:db8:2::/64'. */
  readonly destination: string;
  /** The outgoing link's ifindex (RTA_OIF). */
  readonly index: number;
  /** The source address for traffic that has none yet (RTA_PREFSRC). */
  readonly source?: string;
  /** The routing table (RTA_TABLE); main (254) by default. */
  readonly table?: number;
  /** The path MTU of the route (RTA_METRICS / RTAX_MTU). */
  readonly mtu?: number;
  /** The route's metric (RTA_PRIORITY). */
  readonly metric?: number;
  /** Who installed it (rtm_protocol); RTPROT_STATIC by default. */
  readonly protocol?: number;
}

interface Prefix {
  readonly family: typeof AF_INET | typeof AF_INET6;
  readonly bytes: Uint8Array;
  readonly length: number;
}

function parsePrefix(text: string, what: string, requireNetwork: boolean): Prefix {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  let bytes: Uint8Array;
  try {
    bytes = parseAddress(address);
  } catch {
    throw new RangeError(`${what} '${text}' is not an IPv4 or IPv6 address or prefix`);
  }
  const bits = bytes.length * 8;
  const lengthText = slash < 0 ? undefined : text.slice(slash + 1);
  const length = lengthText === undefined ? bits : Number(lengthText);
  if ((lengthText !== undefined && !/^\d{1,3}$/.test(lengthText)) || length > bits)
    throw new RangeError(`${what} '${text}': the prefix length must be 0 to ${bits}`);
  if (requireNetwork) {
    const mask = prefixMask(length, bytes.length as 4 | 16);
    if (bytes.some((byte, i) => (byte & ~mask[i]!) !== 0))
      throw new RangeError(
        `${what} '${text}' has host bits set (the prefix is ${formatPrefix(bytes, mask, length)})`,
      );
  }
  return { family: bytes.length === 4 ? AF_INET : AF_INET6, bytes, length };
}

function formatPrefix(bytes: Uint8Array, mask: Uint8Array, length: number): string {
  return `${formatAddress(bytes.map((byte, i) => byte & mask[i]!))}/${length}`;
}

function parseHost(text: string, what: string, family: number): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = parseAddress(text);
  } catch {
    throw new RangeError(`${what} '${text}' is not an IPv4 or IPv6 address`);
  }
  if ((bytes.length === 4 ? AF_INET : AF_INET6) !== family)
    throw new RangeError(`${what} '${text}' is not of the same family as the rest`);
  return bytes;
}

function u32(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new RangeError(`${value} is not a 32-bit unsigned integer`);
  const bytes = new Uint8Array(4);
  view(bytes).setUint32(0, value, LITTLE_ENDIAN);
  return bytes;
}

function ifindex(index: number): number {
  if (!Number.isInteger(index) || index <= 0 || index > 0x7fffffff)
    throw new RangeError(`${index} is not an interface index`);
  return index;
}

/** struct ifinfomsg (linux/rtnetlink.h): family, pad, type, index, flags, change. */
function ifinfomsg(index: number, flags: number, change: number): Uint8Array {
  const bytes = new Uint8Array(IFINFOMSG_LEN);
  const dv = view(bytes);
  dv.setUint8(0, AF_UNSPEC);
  dv.setUint16(2, 0, LITTLE_ENDIAN);
  dv.setInt32(4, index, LITTLE_ENDIAN);
  dv.setUint32(8, flags, LITTLE_ENDIAN);
  dv.setUint32(12, change, LITTLE_ENDIAN);
  return bytes;
}

/** RTM_GETLINK for one link by name (IFLA_IFNAME, NUL-terminated). */
export function encodeGetLink(name: string): Uint8Array {
  const text = Buffer.from(name, 'utf8');
  if (text.length === 0 || text.length > 15) throw new RangeError(`'${name}' is not an interface name`);
  return concat([ifinfomsg(0, 0, 0), encodeAttribute(IFLA_IFNAME, concat([text, new Uint8Array(1)]))]);
}

/** RTM_GETLINK with NLM_F_DUMP: every link. */
export function encodeDumpLinks(): Uint8Array {
  return ifinfomsg(0, 0, 0);
}

/** RTM_NEWLINK on an existing link: IFF_UP in flags and change mask, IFLA_MTU, IFLA_TXQLEN. */
export function encodeSetLink(index: number, settings: LinkSettings): Uint8Array {
  const change = settings.up === undefined ? 0 : IFF_UP;
  const flags = settings.up ? IFF_UP : 0;
  const parts: Uint8Array[] = [ifinfomsg(ifindex(index), flags, change)];
  if (settings.mtu !== undefined) parts.push(encodeAttribute(IFLA_MTU, u32(settings.mtu)));
  if (settings.txQueueLength !== undefined) {
    parts.push(encodeAttribute(IFLA_TXQLEN, u32(settings.txQueueLength)));
  }
  return concat(parts);
}

/** A link from an RTM_NEWLINK answer. */
export function decodeLink(message: NetlinkMessage): LinkInfo {
  if (message.payload.length < IFINFOMSG_LEN)
    throw new NetlinkParseError(
      `a link message of ${message.payload.length} bytes, expected at least ${IFINFOMSG_LEN}`,
      16,
    );
  const dv = view(message.payload);
  const index = dv.getInt32(4, LITTLE_ENDIAN);
  const flags = dv.getUint32(8, LITTLE_ENDIAN);
  let name = '';
  let mtu: number | undefined;
  for (const attribute of decodeAttributes(message.payload, IFINFOMSG_LEN)) {
    if (attribute.type === IFLA_IFNAME) {
      const end = attribute.value.indexOf(0);
      name = Buffer.from(attribute.value.subarray(0, end < 0 ? attribute.value.length : end)).toString(
        'utf8',
      );
    } else if (attribute.type === IFLA_MTU && attribute.value.length >= 4) {
      mtu = view(attribute.value).getUint32(0, LITTLE_ENDIAN);
    }
  }
  return { index, name, flags, up: (flags & IFF_UP) !== 0, mtu };
}

/** RTM_NEWADDR / RTM_DELADDR: struct ifaddrmsg (linux/if_addr.h), IFA_LOCAL, IFA_ADDRESS. */
export function encodeAddress(spec: AddressSpec): Uint8Array {
  const prefix = parsePrefix(spec.address, 'address', false);
  const peer = spec.peer === undefined ? prefix.bytes : parseHost(spec.peer, 'peer', prefix.family);
  const header = new Uint8Array(IFADDRMSG_LEN);
  const dv = view(header);
  dv.setUint8(0, prefix.family);
  dv.setUint8(1, prefix.length);
  dv.setUint8(2, spec.noDad ? IFA_F_NODAD : 0);
  dv.setUint8(3, RT_SCOPE_UNIVERSE);
  dv.setUint32(4, ifindex(spec.index), LITTLE_ENDIAN);
  return concat([header, encodeAttribute(IFA_LOCAL, prefix.bytes), encodeAttribute(IFA_ADDRESS, peer)]);
}

/**
 * RTM_NEWROUTE / RTM_DELROUTE: struct rtmsg (linux/rtnetlink.h) and RTA_DST, RTA_OIF,
 * RTA_PREFSRC, RTA_TABLE, RTA_PRIORITY, RTA_METRICS { RTAX_MTU }.
 *
 * Adding: a unicast route of rtm_protocol (RTPROT_STATIC), scope link for IPv4 (no gateway:
 * the prefix is on the link), universe for IPv6. Deleting: type, protocol and scope are left
 * open (RTN_UNSPEC, RTPROT_UNSPEC, RT_SCOPE_NOWHERE) so that the kernel matches whatever route
 * has this prefix, table and link. rtm_table holds tables below 256; RTA_TABLE always says it.
 */
export function encodeRoute(spec: RouteSpec, operation: 'add' | 'delete'): Uint8Array {
  const prefix = parsePrefix(spec.destination, 'destination', true);
  const table = spec.table ?? RT_TABLE_MAIN;
  u32(table);
  const add = operation === 'add';
  const header = new Uint8Array(RTMSG_LEN);
  const dv = view(header);
  dv.setUint8(0, prefix.family);
  dv.setUint8(1, prefix.length); // rtm_dst_len
  dv.setUint8(2, 0); // rtm_src_len
  dv.setUint8(3, 0); // rtm_tos
  dv.setUint8(4, table < 256 ? table : RT_TABLE_UNSPEC);
  dv.setUint8(5, add ? (spec.protocol ?? RTPROT_STATIC) : (spec.protocol ?? RTPROT_UNSPEC));
  dv.setUint8(6, add ? (prefix.family === AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE) : RT_SCOPE_NOWHERE);
  dv.setUint8(7, add ? RTN_UNICAST : RTN_UNSPEC);
  dv.setUint32(8, 0, LITTLE_ENDIAN); // rtm_flags
  const parts: Uint8Array[] = [header];
  if (prefix.length > 0) parts.push(encodeAttribute(RTA_DST, prefix.bytes));
  parts.push(encodeAttribute(RTA_OIF, u32(ifindex(spec.index))));
  if (spec.source !== undefined)
    parts.push(encodeAttribute(RTA_PREFSRC, parseHost(spec.source, 'source', prefix.family)));
  parts.push(encodeAttribute(RTA_TABLE, u32(table)));
  if (spec.metric !== undefined) parts.push(encodeAttribute(RTA_PRIORITY, u32(spec.metric)));
  if (add && spec.mtu !== undefined)
    parts.push(encodeAttribute(RTA_METRICS, encodeAttribute(RTAX_MTU, u32(spec.mtu))));
  return concat(parts);
}

function describeRoute(spec: RouteSpec): string {
  return `route ${spec.destination} dev #${spec.index}${spec.table !== undefined ? ` table ${spec.table}` : ''}`;
}

/** rtnetlink requests over a channel (a NetlinkSocket of NETLINK_ROUTE, or a fake). */
export class Rtnetlink {
  constructor(private readonly channel: NetlinkChannel) {}

  /** Every link (an RTM_GETLINK dump). */
  async links(): Promise<LinkInfo[]> {
    const answers = await this.channel.request(RTM_GETLINK, NLM_F_DUMP, encodeDumpLinks(), 'list links');
    return answers.filter((message) => message.type === RTM_NEWLINK).map(decodeLink);
  }

  /** One link by name; rejects with NetlinkError ENODEV when there is none. */
  async link(name: string): Promise<LinkInfo> {
    const answers = await this.channel.request(RTM_GETLINK, 0, encodeGetLink(name), `look up link '${name}'`);
    const found = answers.find((message) => message.type === RTM_NEWLINK);
    if (!found) throw new Error(`look up link '${name}': the kernel answered without the link`);
    return decodeLink(found);
  }

  async linkIndex(name: string): Promise<number> {
    return (await this.link(name)).index;
  }

  /** Sets a link up (or down) and its MTU. */
  async setLink(index: number, settings: LinkSettings): Promise<void> {
    const what =
      `set link #${index}${settings.up !== undefined ? (settings.up ? ' up' : ' down') : ''}` +
      `${settings.mtu !== undefined ? ` mtu ${settings.mtu}` : ''}` +
      `${settings.txQueueLength !== undefined ? ` txqueuelen ${settings.txQueueLength}` : ''}`;
    await this.channel.request(RTM_NEWLINK, 0, encodeSetLink(index, settings), what);
  }

  /** Adds an address; EEXIST if the link has it already, unless `replace`. */
  async addAddress(spec: AddressSpec, options: { replace?: boolean } = {}): Promise<void> {
    const flags = NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL);
    await this.channel.request(
      RTM_NEWADDR,
      flags,
      encodeAddress(spec),
      `add address ${spec.address} to link #${spec.index}`,
    );
  }

  async deleteAddress(spec: AddressSpec): Promise<void> {
    await this.channel.request(
      RTM_DELADDR,
      0,
      encodeAddress(spec),
      `delete address ${spec.address} from link #${spec.index}`,
    );
  }

  /** Adds a route; EEXIST if there is one for the prefix already, unless `replace`. */
  async addRoute(spec: RouteSpec, options: { replace?: boolean } = {}): Promise<void> {
    const flags = NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL);
    await this.channel.request(RTM_NEWROUTE, flags, encodeRoute(spec, 'add'), `add ${describeRoute(spec)}`);
  }

  /** Deletes a route; ESRCH when there is none. */
  async deleteRoute(spec: RouteSpec): Promise<void> {
    await this.channel.request(RTM_DELROUTE, 0, encodeRoute(spec, 'delete'), `delete ${describeRoute(spec)}`);
  }
}
