import { endianness } from 'node:os';
import { setIpv4HeaderChecksum } from './packet.js';

/**
 * Receive coalescing (GRO) for the TUN device, as the kernel does for a NIC and wireguard-go for
 * its TUN device. The TUN device is opened with IFF_VNET_HDR, so every packet written to it starts
 * with a struct virtio_net_hdr (linux/virtio_net.h). Consecutive TCP segments of one flow in a
 * batch of decrypted packets are written as one TCP super-packet with a GSO header: the kernel's
 * TCP then takes one packet (and answers with one ACK) where it would have taken dozens. That
 * ACK count matters twice here: each ACK is an ESP packet of its own, through both daemons.
 *
 * Segments merge only when the kernel could have cut them from one packet again: same addresses,
 * ports, IP header fields, TCP options, ACK number and window; consecutive sequence numbers;
 * every segment but the last of the same size (that size becomes gso_size); only ACK and PSH set,
 * and PSH ends a super-packet. The super-packet carries the TCP checksum as a partial sum
 * (VIRTIO_NET_HDR_F_NEEDS_CSUM), as TCP's own transmit path leaves it: ESP's ICV, much stronger
 * than a checksum, authenticated every segment already, and the kernel completes the sum if the
 * packet is forwarded and cut up again.
 *
 * And the other way, segmentation offload (TSO) for what the kernel sends into the device: with
 * TUNSETOFFLOAD (TUN_OFFLOADS) reads bring TCP super-packets, which readPackets cuts into
 * segments here, as wireguard-go does.
 */

/** sizeof(struct virtio_net_hdr). */
export const VNET_HEADER_LENGTH = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
/** The header fields are in the host's byte order (a legacy virtio header, no TUNSETVNETLE). */
const LITTLE_ENDIAN = endianness() === 'LE';
/** The header of a packet that is written as it is. */
const PLAIN_HEADER = new Uint8Array(VNET_HEADER_LENGTH);
/** As Linux's GRO: at most this many segments per super-packet. */
const MAX_SEGMENTS = 64;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
const IPPROTO_TCP = 6;

/** A TCP segment that may merge: where its parts are. */
interface Segment {
  readonly packet: Uint8Array;
  readonly version: 4 | 6;
  /** Bytes of IP header and of IP + TCP header. */
  readonly ipLength: number;
  readonly headerLength: number;
  readonly payloadLength: number;
  readonly seq: number;
}

/** A run of segments of one flow being merged. */
interface Run {
  readonly first: Segment;
  readonly segments: Segment[];
  /** Payload bytes so far, and the sequence number the next segment must have. */
  payload: number;
  nextSeq: number;
  /** A PSH, a short segment or the size limit ended it. */
  closed: boolean;
}

const u16 = (p: Uint8Array, at: number): number => (p[at]! << 8) | p[at + 1]!;
const u32 = (p: Uint8Array, at: number): number =>
  ((p[at]! << 24) | (p[at + 1]! << 16) | (p[at + 2]! << 8) | p[at + 3]!) >>> 0;

/** The packet as a segment that may merge, or undefined (anything else is written as it is). */
function segmentOf(packet: Uint8Array): Segment | undefined {
  const version = packet[0]! >> 4;
  let ipLength: number;
  let total: number;
  if (version === 4) {
    // No IP options, TCP, not a fragment (MF clear, offset 0).
    if (packet[0] !== 0x45 || packet[9] !== IPPROTO_TCP || (u16(packet, 6) & 0x3fff) !== 0) return undefined;
    ipLength = 20;
    total = u16(packet, 2);
  } else if (version === 6) {
    if (packet[6] !== IPPROTO_TCP) return undefined; // no extension headers
    ipLength = 40;
    total = 40 + u16(packet, 4);
  } else {
    return undefined;
  }
  if (total !== packet.length || total < ipLength + 20) return undefined;
  const tcpLength = (packet[ipLength + 12]! >> 4) * 4;
  const flags = packet[ipLength + 13]!;
  // Only ACK, optionally PSH: no SYN, FIN, RST, URG, ECE or CWR.
  if ((flags & ~TCP_PSH) !== TCP_ACK || tcpLength < 20) return undefined;
  const headerLength = ipLength + tcpLength;
  if (headerLength >= total) return undefined; // no payload: a pure ACK
  return {
    packet,
    version,
    ipLength,
    headerLength,
    payloadLength: total - headerLength,
    seq: u32(packet, ipLength + 4),
  };
}

/** Whether `next` continues `run`: the same flow and headers, the next bytes, room left. */
function continues(run: Run, next: Segment): boolean {
  const a = run.first.packet;
  const b = next.packet;
  const { first } = run;
  if (next.version !== first.version || next.headerLength !== first.headerLength) return false;
  if (next.seq !== run.nextSeq || next.payloadLength > first.payloadLength) return false;
  if (first.headerLength + run.payload + next.payloadLength > 0xffff) return false;
  if (first.version === 4) {
    // Version, IHL and TOS; TTL and protocol; addresses. Not the length, ID or checksum.
    if (a[1] !== b[1] || a[8] !== b[8] || !equalRange(a, b, 12, 20)) return false;
  } else if (!equalRange(a, b, 0, 4) || a[7] !== b[7] || !equalRange(a, b, 8, 40)) {
    return false; // traffic class and flow label; hop limit; addresses
  }
  const t = first.ipLength;
  // Ports; ACK number; data offset; window; options. Not the sequence number, flags or checksum.
  return (
    equalRange(a, b, t, t + 4) &&
    equalRange(a, b, t + 8, t + 13) &&
    equalRange(a, b, t + 14, t + 16) &&
    equalRange(a, b, t + 20, first.headerLength)
  );
}

function equalRange(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The packets as buffers for writeMany(fd, buffers, 2): a virtio_net_hdr then a packet, for each
 * packet to write. Packets that merge become one super-packet; the others are passed on unchanged
 * (not copied), in their order within their flow.
 */
export function coalesce(packets: readonly Uint8Array[]): Uint8Array[] {
  const runs: (Run | Uint8Array)[] = [];
  /** Open runs, the latest last: a batch rarely holds more than a few flows. */
  const open: Run[] = [];
  for (const packet of packets) {
    const segment = segmentOf(packet);
    if (!segment) {
      runs.push(packet);
      continue;
    }
    let run: Run | undefined;
    for (let i = open.length - 1; i >= 0 && !run; i--) {
      const candidate = open[i]!;
      if (!candidate.closed && continues(candidate, segment)) run = candidate;
    }
    if (run) {
      run.segments.push(segment);
      run.payload += segment.payloadLength;
    } else {
      run = {
        first: segment,
        segments: [segment],
        payload: segment.payloadLength,
        nextSeq: 0,
        closed: false,
      };
      runs.push(run);
      open.push(run);
    }
    run.nextSeq = (segment.seq + segment.payloadLength) >>> 0;
    const psh = (packet[segment.ipLength + 13]! & TCP_PSH) !== 0;
    run.closed =
      psh || segment.payloadLength < run.first.payloadLength || run.segments.length >= MAX_SEGMENTS;
  }
  const out: Uint8Array[] = [];
  for (const run of runs) {
    if (run instanceof Uint8Array) out.push(PLAIN_HEADER, run);
    else if (run.segments.length === 1) out.push(PLAIN_HEADER, run.first.packet);
    else out.push(...merge(run));
  }
  return out;
}

/** One super-packet of a run of two or more segments, and its GSO header. */
function merge(run: Run): [Uint8Array, Uint8Array] {
  const { first, segments } = run;
  const { ipLength, headerLength } = first;
  const packet = new Uint8Array(headerLength + run.payload);
  packet.set(first.packet.subarray(0, headerLength));
  let at = headerLength;
  let flags = 0;
  for (const segment of segments) {
    packet.set(segment.packet.subarray(segment.headerLength), at);
    at += segment.payloadLength;
    flags |= segment.packet[ipLength + 13]!;
  }
  packet[ipLength + 13] = flags; // PSH if any segment had it
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const tcpLength = packet.length - ipLength;
  // TCP checksum field: the pseudo-header's sum, folded and not inverted (CHECKSUM_PARTIAL).
  view.setUint16(ipLength + 16, 0);
  let pseudo: number;
  if (first.version === 4) {
    view.setUint16(2, packet.length);
    setIpv4HeaderChecksum(packet);
    pseudo = sum16(packet, 12, 20) + IPPROTO_TCP + tcpLength;
  } else {
    view.setUint16(4, packet.length - 40);
    pseudo = sum16(packet, 8, 40) + IPPROTO_TCP + tcpLength;
  }
  view.setUint16(ipLength + 16, fold(pseudo));

  const header = new Uint8Array(VNET_HEADER_LENGTH);
  const h = new DataView(header.buffer);
  h.setUint8(0, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  h.setUint8(1, first.version === 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6);
  h.setUint16(2, headerLength, LITTLE_ENDIAN); // hdr_len
  h.setUint16(4, first.payloadLength, LITTLE_ENDIAN); // gso_size
  h.setUint16(6, ipLength, LITTLE_ENDIAN); // csum_start: the TCP header
  h.setUint16(8, 16, LITTLE_ENDIAN); // csum_offset: TCP's checksum field
  return [header, packet];
}

/** The 16-bit words of packet[from, to) (an even distance), summed without folding. */
function sum16(packet: Uint8Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i += 2) sum += (packet[i]! << 8) | packet[i + 1]!;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * A packet read from a device without offloads: the virtio_net_hdr stripped. The kernel hands
 * over whole packets with their checksums done (no GSO, no partial checksum), and the header
 * carries nothing to act on.
 */
export function stripHeader(read: Uint8Array): Uint8Array {
  return read.subarray(VNET_HEADER_LENGTH);
}

/** TUNSETOFFLOAD's flags (linux/if_tun.h). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
/**
 * The offloads the data plane asks of its TUN device (see readPackets): TCP super-packets of up to
 * 64 KiB, as wireguard-go does. The kernel's TCP then builds, queues and hands over one packet
 * where it would have cut dozens, and a read brings 64 KiB; the cutting left to us is copying
 * headers and computing checksums, a fraction of what the kernel's per-packet path costs.
 */
export const TUN_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

const VIRTIO_NET_HDR_GSO_NONE = 0;
const TCP_FIN = 0x01;
const TCP_CWR = 0x80;

/**
 * The IP packets of one read from a device with offloads (TUN_OFFLOADS), appended to `out`; false
 * (nothing appended) when the header makes no sense, which the kernel's own packets never do.
 * The header may leave two things to us, as it would to a NIC:
 *
 * - a checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field at csum_start + csum_offset holds the
 *   pseudo-header's sum, and the rest is the sum over csum_start to the end, done here as the
 *   kernel's skb_checksum_help does;
 * - TCP segmentation (VIRTIO_NET_HDR_GSO_TCPV4, _TCPV6): one IP and TCP header over up to 64 KiB
 *   of payload, cut into segments of gso_size as the kernel's tcp_gso_segment would: each with
 *   the headers copied, IPv4 total length, identification (+1 per segment) and header checksum
 *   or IPv6 payload length set, the sequence number advanced, FIN and PSH only on the last
 *   segment and CWR only on the first, and its TCP checksum computed in full (the packets leave
 *   through ESP, so the peer gets them as they are).
 *
 * Packets needing neither come out as views into the read, segments as buffers of their own.
 */
export function readPackets(read: Uint8Array, out: Uint8Array[]): boolean {
  if (read.length < VNET_HEADER_LENGTH) return false;
  const header = new DataView(read.buffer, read.byteOffset, VNET_HEADER_LENGTH);
  const flags = read[0]!;
  const gso = read[1]!;
  const packet = read.subarray(VNET_HEADER_LENGTH);
  const csumStart = header.getUint16(6, LITTLE_ENDIAN);
  if (gso === VIRTIO_NET_HDR_GSO_NONE) {
    if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      const field = csumStart + header.getUint16(8, LITTLE_ENDIAN);
      if (field + 2 > packet.length) return false;
      const checksum = ~fold(onesSum(packet, csumStart, packet.length)) & 0xffff;
      writeU16(packet, field, checksum === 0 ? 0xffff : checksum);
    }
    out.push(packet);
    return true;
  }
  const version = gso === VIRTIO_NET_HDR_GSO_TCPV4 ? 4 : gso === VIRTIO_NET_HDR_GSO_TCPV6 ? 6 : 0;
  if (version === 0 || !(flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || packet[0]! >> 4 !== version) return false;
  return segment(packet, version, csumStart, header.getUint16(4, LITTLE_ENDIAN), out);
}

/** A TCP super-packet cut into segments of `mss` payload bytes (see readPackets). */
function segment(packet: Uint8Array, version: 4 | 6, tcp: number, mss: number, out: Uint8Array[]): boolean {
  if (tcp < (version === 4 ? 20 : 40) || tcp + 20 > packet.length || mss === 0) return false;
  const tcpLength = (packet[tcp + 12]! >> 4) * 4;
  const headerLength = tcp + tcpLength;
  if (tcpLength < 20 || headerLength >= packet.length) return false;
  if (version === 4 && ((packet[0]! & 0x0f) * 4 > tcp || u16(packet, 2) !== packet.length)) return false;
  const total = packet.length - headerLength;
  const seq = u32(packet, tcp + 4);
  const flags = packet[tcp + 13]!;
  const id = version === 4 ? u16(packet, 4) : 0;
  // The pseudo-header's addresses and protocol; the length differs per segment.
  const pseudo = (version === 4 ? sum16(packet, 12, 20) : sum16(packet, 8, 40)) + IPPROTO_TCP;
  const words = new Uint32Array(packet.buffer, 0, packet.buffer.byteLength >>> 2);
  // One buffer for all the segments, each a view into it.
  const count = Math.ceil(total / mss);
  const all = Buffer.allocUnsafeSlow(count * headerLength + total);
  const headers = packet.subarray(0, headerLength);
  for (let offset = 0, i = 0, at = 0; offset < total; offset += mss, i++) {
    const length = Math.min(mss, total - offset);
    const from = headerLength + offset;
    const piece = all.subarray(at, at + headerLength + length);
    at += headerLength + length;
    piece.set(headers);
    piece.set(packet.subarray(from, from + length), headerLength);
    if (version === 4) {
      writeU16(piece, 2, piece.length);
      writeU16(piece, 4, (id + i) & 0xffff);
      setIpv4HeaderChecksum(piece);
    } else {
      writeU16(piece, 4, piece.length - 40);
    }
    piece.writeUInt32BE((seq + offset) >>> 0, tcp + 4);
    let segmentFlags = flags;
    if (offset + length < total) segmentFlags &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) segmentFlags &= ~TCP_CWR;
    piece[tcp + 13] = segmentFlags;
    piece[tcp + 16] = 0;
    piece[tcp + 17] = 0;
    const sum =
      pseudo +
      tcpLength +
      length +
      sum16(piece, tcp, headerLength) +
      onesSum(packet, from, from + length, words);
    writeU16(piece, tcp + 16, ~fold(sum) & 0xffff);
    out.push(piece);
  }
  return true;
}

function writeU16(p: Uint8Array, at: number, value: number): void {
  p[at] = value >> 8;
  p[at + 1] = value & 0xff;
}

const swap16 = (x: number): number => ((x & 0xff) << 8) | (x >>> 8);

/**
 * The one's complement sum of p[start, end) as big-endian 16-bit words, folded to 16 bits
 * (RFC 1071). The bulk goes through 32-bit loads in the host's byte order (the sum does not
 * depend on byte order but for a swap at the end, RFC 1071 section 2 (B)), two 16-bit halves
 * added apart so that everything stays a small integer; `words` is a Uint32Array over the whole
 * of p.buffer, when the caller has one.
 */
function onesSum(p: Uint8Array, start: number, end: number, words?: Uint32Array): number {
  let sum = 0;
  let i = start;
  if (end - start >= 64) {
    const base = p.byteOffset;
    const lead = (4 - ((base + i) & 3)) & 3;
    for (const stop = i + lead; i < stop; i++) sum += ((i - start) & 1) === 0 ? p[i]! << 8 : p[i]!;
    const all = words ?? new Uint32Array(p.buffer, 0, p.buffer.byteLength >>> 2);
    const first = (base + i) >>> 2;
    const count = (end - i) >>> 2;
    let low = 0;
    let high = 0;
    for (let j = first, stop = first + count; j < stop; j++) {
      const word = all[j]!;
      low += word & 0xffff;
      high += word >>> 16;
    }
    let bulk = fold(low + high);
    if (LITTLE_ENDIAN) bulk = swap16(bulk);
    // An odd distance from `start`: the words straddle the big-endian pairs, one byte off.
    if (((i - start) & 1) === 1) bulk = swap16(bulk);
    sum += bulk;
    i += count * 4;
  }
  for (; i < end; i++) sum += ((i - start) & 1) === 0 ? p[i]! << 8 : p[i]!;
  return fold(sum);
}
