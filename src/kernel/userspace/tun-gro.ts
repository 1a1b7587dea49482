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

/** The 16-bit words of packet[from, to), summed without folding. */
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
 * A packet read from the device: the virtio_net_hdr stripped. The device is opened without
 * TUNSETOFFLOAD, so the kernel hands over whole packets with their checksums done (no GSO, no
 * partial checksum), and the header carries nothing to act on.
 */
export function stripHeader(read: Uint8Array): Uint8Array {
  return read.subarray(VNET_HEADER_LENGTH);
}
