/**
 * The little IP the userspace data plane needs: enough of an IPv4 (RFC 791) or IPv6 (RFC 8200)
 * header to find a packet's policy (addresses, protocol, ports or ICMP type and code), the
 * Internet checksum (RFC 1071) for IPv4 headers and the TCP/UDP/ICMPv6 pseudo-header checksums
 * (RFC 793, 768, 8200 section 8.1, 4443), and the header surgery of transport mode (RFC 4303
 * section 3.1.1): taking the upper-layer data out of a packet, and building a packet around
 * decrypted upper-layer data with its checksum recomputed for the addresses it now carries (what
 * RFC 3948 section 3.1.2 asks of transport mode behind a NAT, done the simple way).
 */

export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ESP = 50;
export const IPPROTO_ICMPV6 = 58;
/** RFC 4303 section 2.6: a dummy packet, to be discarded by the receiver. */
export const IPPROTO_NONE = 59;

/** What a policy lookup needs from a packet. */
export interface Flow {
  readonly version: 4 | 6;
  /** Views into the packet (4 or 16 bytes). */
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  /** IPv4 addresses as unsigned numbers, for fast comparison (0 for IPv6). */
  readonly src4: number;
  readonly dst4: number;
  /** The upper-layer protocol, after any IPv6 extension headers. */
  readonly protocol: number;
  /**
   * Ports of TCP, UDP, SCTP, UDP-Lite; for ICMP and ICMPv6 both carry type << 8 | code (the
   * convention of RFC 7296 section 3.13.1); -1 where unknown (no ports, a non-first fragment, or
   * a header cut short).
   */
  readonly srcPort: number;
  readonly dstPort: number;
  /** Offset of the upper-layer header. */
  readonly headerLength: number;
  /** The packet's length by its header (the buffer may be longer: TFC padding). */
  readonly totalLength: number;
  /** A fragment (first or later): its upper-layer data is not complete. */
  readonly fragment: boolean;
}

const PORTED = new Set([IPPROTO_TCP, IPPROTO_UDP, 132 /* SCTP */, 136 /* UDP-Lite */, 33 /* DCCP */]);
const IPV6_EXTENSIONS = new Set([0 /* hop-by-hop */, 43 /* routing */, 60 /* destination options */]);
const IPV6_FRAGMENT = 44;

/** Parses an IP packet's headers; undefined when it is not a well-formed IPv4 or IPv6 packet. */
export function parsePacket(packet: Uint8Array): Flow | undefined {
  if (packet.length < 1) return undefined;
  const version = packet[0]! >> 4;
  if (version === 4) return parseIpv4(packet);
  if (version === 6) return parseIpv6(packet);
  return undefined;
}

function parseIpv4(p: Uint8Array): Flow | undefined {
  if (p.length < 20) return undefined;
  const headerLength = (p[0]! & 0x0f) * 4;
  const totalLength = (p[2]! << 8) | p[3]!;
  if (headerLength < 20 || totalLength < headerLength || totalLength > p.length) return undefined;
  const flags = (p[6]! << 8) | p[7]!;
  const offset = flags & 0x1fff;
  const fragment = offset !== 0 || (flags & 0x2000) !== 0;
  const protocol = p[9]!;
  const src4 = ((p[12]! << 24) | (p[13]! << 16) | (p[14]! << 8) | p[15]!) >>> 0;
  const dst4 = ((p[16]! << 24) | (p[17]! << 16) | (p[18]! << 8) | p[19]!) >>> 0;
  const ports = offset === 0 ? readPorts(p, protocol, headerLength, totalLength) : NO_PORTS;
  return {
    version: 4,
    src: p.subarray(12, 16),
    dst: p.subarray(16, 20),
    src4,
    dst4,
    protocol,
    srcPort: ports[0],
    dstPort: ports[1],
    headerLength,
    totalLength,
    fragment,
  };
}

function parseIpv6(p: Uint8Array): Flow | undefined {
  if (p.length < 40) return undefined;
  const totalLength = 40 + ((p[4]! << 8) | p[5]!);
  if (totalLength > p.length) return undefined;
  let next = p[6]!;
  let offset = 40;
  let fragment = false;
  let firstFragment = true;
  for (;;) {
    if (IPV6_EXTENSIONS.has(next)) {
      if (offset + 8 > totalLength) return undefined;
      const length = (p[offset + 1]! + 1) * 8;
      next = p[offset]!;
      offset += length;
    } else if (next === IPV6_FRAGMENT) {
      if (offset + 8 > totalLength) return undefined;
      fragment = true;
      firstFragment = (((p[offset + 2]! << 8) | p[offset + 3]!) & 0xfff8) === 0;
      next = p[offset]!;
      offset += 8;
    } else {
      break;
    }
    if (offset > totalLength) return undefined;
  }
  const ports = firstFragment ? readPorts(p, next, offset, totalLength) : NO_PORTS;
  return {
    version: 6,
    src: p.subarray(8, 24),
    dst: p.subarray(24, 40),
    src4: 0,
    dst4: 0,
    protocol: next,
    srcPort: ports[0],
    dstPort: ports[1],
    headerLength: offset,
    totalLength,
    fragment,
  };
}

const NO_PORTS = [-1, -1] as const;

function readPorts(p: Uint8Array, protocol: number, at: number, end: number): readonly [number, number] {
  if (PORTED.has(protocol)) {
    if (at + 4 > end) return NO_PORTS;
    return [(p[at]! << 8) | p[at + 1]!, (p[at + 2]! << 8) | p[at + 3]!];
  }
  if (protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6) {
    if (at + 2 > end) return NO_PORTS;
    const typeCode = (p[at]! << 8) | p[at + 1]!;
    return [typeCode, typeCode];
  }
  return NO_PORTS;
}

/**
 * The one's complement sum of `data[start, end)` as 16-bit big-endian words (RFC 1071), folded
 * to 16 bits, added to `initial` (an unfolded partial sum).
 */
export function onesComplementSum(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  let sum = initial;
  let i = start;
  const even = end - ((end - start) & 1);
  for (; i < even; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of a byte range: the complement of the one's complement sum. */
export function internetChecksum(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  return ~onesComplementSum(data, start, end, initial) & 0xffff;
}

/** Recomputes an IPv4 header's checksum field (bytes 10-11) in place; returns it. */
export function setIpv4HeaderChecksum(packet: Uint8Array): number {
  const headerLength = (packet[0]! & 0x0f) * 4;
  packet[10] = 0;
  packet[11] = 0;
  const checksum = internetChecksum(packet, 0, headerLength);
  packet[10] = checksum >> 8;
  packet[11] = checksum & 0xff;
  return checksum;
}

/** Offset of the checksum field inside the upper-layer header, for the protocols that have one. */
function checksumOffset(version: 4 | 6, protocol: number): number | undefined {
  if (protocol === IPPROTO_TCP) return 16;
  if (protocol === IPPROTO_UDP) return 6;
  if (protocol === IPPROTO_ICMPV6 && version === 6) return 2;
  if (protocol === IPPROTO_ICMP && version === 4) return 2;
  return undefined;
}

/**
 * Recomputes the checksum of the upper-layer segment `packet[offset, end)` for the given
 * addresses: TCP and UDP over the pseudo-header (RFC 793 section 3.1, RFC 768, RFC 8200 section
 * 8.1), ICMPv6 likewise (RFC 4443 section 2.3), ICMP over the message alone (RFC 792). An IPv4
 * UDP checksum of zero means "none" and stays zero. Other protocols are left alone. Returns
 * whether a checksum was written.
 */
export function setTransportChecksum(
  packet: Uint8Array,
  offset: number,
  end: number,
  version: 4 | 6,
  protocol: number,
  src: Uint8Array,
  dst: Uint8Array,
): boolean {
  const field = checksumOffset(version, protocol);
  if (field === undefined || offset + field + 2 > end) return false;
  const at = offset + field;
  if (version === 4 && protocol === IPPROTO_UDP && packet[at] === 0 && packet[at + 1] === 0) return false;
  packet[at] = 0;
  packet[at + 1] = 0;
  let sum = 0;
  if (protocol !== IPPROTO_ICMP) {
    const length = end - offset;
    sum = onesComplementSum(src, 0, src.length, sum);
    sum = onesComplementSum(dst, 0, dst.length, sum);
    sum += protocol + (length & 0xffff) + Math.floor(length / 0x10000);
  }
  let checksum = internetChecksum(packet, offset, end, sum);
  // UDP sends a computed zero as all ones (RFC 768; RFC 8200 section 8.1 for IPv6).
  if (checksum === 0 && protocol === IPPROTO_UDP) checksum = 0xffff;
  packet[at] = checksum >> 8;
  packet[at + 1] = checksum & 0xff;
  return true;
}

/**
 * Transport mode, sending: the upper-layer data of a packet and its protocol. The IP header and
 * any IPv6 extension headers stay behind (with ESP in UDP the outer header is the UDP socket's).
 */
export function upperLayer(packet: Uint8Array, flow: Flow): Uint8Array {
  return packet.subarray(flow.headerLength, flow.totalLength);
}

/**
 * Transport mode, receiving: a packet from `src` to `dst` around decrypted upper-layer data,
 * with the IPv4 header checksum and the TCP/UDP/ICMPv6 checksum computed for these addresses
 * (the sender computed it over its own view of the addresses, which a NAT may have changed).
 * One new buffer; the payload is copied once.
 */
export function buildPacket(
  src: Uint8Array,
  dst: Uint8Array,
  protocol: number,
  payload: Uint8Array,
  ttl = 64,
): Uint8Array {
  const version = src.length === 4 ? 4 : 6;
  const headerLength = version === 4 ? 20 : 40;
  const total = headerLength + payload.length;
  if (version === 4 ? total > 0xffff : payload.length > 0xffff) {
    throw new RangeError(`an IPv${version} packet cannot carry ${payload.length} bytes`);
  }
  const packet = new Uint8Array(total);
  if (version === 4) {
    packet[0] = 0x45;
    packet[2] = total >> 8;
    packet[3] = total & 0xff;
    packet[6] = 0x40; // DF: the packet is delivered locally, never fragmented on the way.
    packet[8] = ttl;
    packet[9] = protocol;
    packet.set(src, 12);
    packet.set(dst, 16);
    setIpv4HeaderChecksum(packet);
  } else {
    packet[0] = 0x60;
    packet[4] = payload.length >> 8;
    packet[5] = payload.length & 0xff;
    packet[6] = protocol;
    packet[7] = ttl;
    packet.set(src, 8);
    packet.set(dst, 24);
  }
  packet.set(payload, headerLength);
  setTransportChecksum(packet, headerLength, total, version, protocol, src, dst);
  return packet;
}

/**
 * Transport mode as RFC 4303 section 3.1.1 draws it for IPv4 without UDP encapsulation: the
 * original header, its protocol now ESP (50), its total length and checksum fixed, then the ESP
 * packet. Used to check the layout against RFC 3602's sample packets; the UDP-encapsulated data
 * plane never sends raw ESP.
 */
export function insertEsp(packet: Uint8Array, esp: Uint8Array): Uint8Array {
  const flow = parsePacket(packet);
  if (flow?.version !== 4) throw new RangeError('insertEsp takes a well-formed IPv4 packet');
  const out = new Uint8Array(flow.headerLength + esp.length);
  out.set(packet.subarray(0, flow.headerLength));
  out.set(esp, flow.headerLength);
  out[2] = out.length >> 8;
  out[3] = out.length & 0xff;
  out[9] = IPPROTO_ESP;
  setIpv4HeaderChecksum(out);
  return out;
}
