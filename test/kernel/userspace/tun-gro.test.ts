import { endianness } from 'node:os';
import t from 'tap';
import { parseAddress } from '../../../src/core/address.js';
import { buildPacket, internetChecksum } from '../../../src/kernel/userspace/packet.js';
import {
  coalesce,
  readPackets,
  stripHeader,
  VNET_HEADER_LENGTH,
} from '../../../src/kernel/userspace/tun-gro.js';

const LE = endianness() === 'LE';
const SRC4 = parseAddress('198.51.100.1');
const DST4 = parseAddress('203.0.113.1');
const ACK = 0x10;
const PSH = 0x08;

/** A TCP segment (20-byte header plus 12 bytes of timestamp option) in IPv4, checksums right. */
function tcp4(
  seq: number,
  payload: Uint8Array,
  { flags = ACK, srcPort = 40000, window = 500 } = {},
): Uint8Array {
  const header = new Uint8Array(32);
  const view = new DataView(header.buffer);
  view.setUint16(0, srcPort);
  view.setUint16(2, 5201);
  view.setUint32(4, seq);
  view.setUint32(8, 777);
  header[12] = 8 << 4;
  header[13] = flags;
  view.setUint16(14, window);
  header.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], 20); // NOP NOP TS
  const segment = new Uint8Array(32 + payload.length);
  segment.set(header);
  segment.set(payload, 32);
  const packet = buildPacket(SRC4, DST4, 6, segment);
  const pseudo = new Uint8Array(12);
  pseudo.set(SRC4);
  pseudo.set(DST4, 4);
  pseudo[9] = 6;
  new DataView(pseudo.buffer).setUint16(10, segment.length);
  const check = internetChecksum(segment, 0, segment.length, pseudoSum(pseudo));
  new DataView(packet.buffer, packet.byteOffset).setUint16(20 + 16, check);
  return packet;
}

function pseudoSum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

/** The pairs coalesce returns, as [header, packet]. */
function pairs(out: Uint8Array[]): [DataView, Uint8Array][] {
  const result: [DataView, Uint8Array][] = [];
  for (let i = 0; i < out.length; i += 2) {
    const header = out[i]!;
    t.equal(header.length, VNET_HEADER_LENGTH);
    result.push([new DataView(header.buffer, header.byteOffset, header.length), out[i + 1]!]);
  }
  return result;
}

t.test('consecutive segments of one flow become one GSO super-packet', async (t) => {
  const mss = 1000;
  const segments = [
    tcp4(1000, bytes(mss, 1)),
    tcp4(2000, bytes(mss, 2)),
    tcp4(3000, bytes(mss, 3)),
    tcp4(4000, bytes(400, 4), { flags: ACK | PSH }),
  ];
  const out = pairs(coalesce(segments));
  t.equal(out.length, 1, 'one packet');
  const [header, packet] = out[0]!;
  t.equal(header.getUint8(0), 1, 'VIRTIO_NET_HDR_F_NEEDS_CSUM');
  t.equal(header.getUint8(1), 1, 'VIRTIO_NET_HDR_GSO_TCPV4');
  t.equal(header.getUint16(2, LE), 52, 'hdr_len: IP and TCP headers');
  t.equal(header.getUint16(4, LE), mss, 'gso_size: the segment size');
  t.equal(header.getUint16(6, LE), 20, 'csum_start: the TCP header');
  t.equal(header.getUint16(8, LE), 16, 'csum_offset: the TCP checksum');
  const p = packet;
  const view = new DataView(p.buffer, p.byteOffset, p.length);
  t.equal(p.length, 52 + 3 * mss + 400);
  t.equal(view.getUint16(2), p.length, 'IPv4 total length');
  t.equal(internetChecksum(p, 0, 20), 0, 'IPv4 header checksum verifies');
  t.equal(view.getUint32(24), 1000, 'the first sequence number');
  t.equal(p[33], ACK | PSH, 'PSH of the last segment kept');
  t.same([p[52], p[52 + mss], p[52 + 2 * mss], p[p.length - 1]], [1, 2, 3, 4], 'payloads in order');
  // The partial checksum: the pseudo-header's folded sum; completed over the TCP bytes it must
  // verify like any checksum.
  const pseudo = new Uint8Array(12);
  pseudo.set(p.subarray(12, 20));
  pseudo[9] = 6;
  new DataView(pseudo.buffer).setUint16(10, p.length - 20);
  t.equal(view.getUint16(36), pseudoSum(pseudo), 'TCP checksum field: the pseudo-header sum');
  const full = internetChecksum(p, 20, p.length);
  view.setUint16(36, full);
  t.equal(internetChecksum(p, 20, p.length, pseudoSum(pseudo)), 0, 'completed, it verifies');
});

t.test('what does not merge is written as it is, behind a plain header', async (t) => {
  const a = tcp4(1000, bytes(500, 1));
  const pureAck = tcp4(5000, new Uint8Array(0));
  const gap = tcp4(2000, bytes(500, 2)); // 1500 expected
  const otherFlow = tcp4(9000, bytes(500, 3), { srcPort: 40001 });
  const otherWindow = tcp4(2500, bytes(500, 4), { window: 501 });
  const syn = tcp4(1, bytes(10, 5), { flags: 0x02 });
  const udp = buildPacket(SRC4, DST4, 17, bytes(20, 6));
  const input = [a, pureAck, gap, otherFlow, otherWindow, syn, udp];
  const out = pairs(coalesce(input));
  t.equal(out.length, input.length);
  out.forEach(([header, packet], i) => {
    t.same(new Uint8Array(header.buffer, header.byteOffset, 10), new Uint8Array(10), `plain header ${i}`);
    t.equal(packet, input[i], `packet ${i} passed on, not copied`);
  });
});

t.test('a shorter segment or PSH ends a run; flows interleave; merged runs stay in flow order', async (t) => {
  const f1 = (seq: number, n: number, flags = ACK) => tcp4(seq, bytes(n, seq & 0xff), { flags });
  const f2 = (seq: number, n: number) => tcp4(seq, bytes(n, 9), { srcPort: 40002 });
  const input = [
    f1(0, 100),
    f2(0, 200),
    f1(100, 100),
    f2(200, 200),
    f1(200, 50), // short: ends the run
    f1(250, 100), // a new run
    f1(350, 100, ACK | PSH), // PSH: ends it
    f1(450, 100),
  ];
  const out = pairs(coalesce(input));
  const summary = out.map(([header, packet]) => [header.getUint8(1), packet.length]);
  t.same(summary, [
    [1, 52 + 250],
    [1, 52 + 400],
    [1, 52 + 200],
    [0, 52 + 100],
  ]);
});

t.test('at most 64 segments and 64 KiB per super-packet; IPv6 merges as TCPV6', async (t) => {
  const many = Array.from({ length: 70 }, (_, i) => tcp4(i * 100, bytes(100, i)));
  const out = pairs(coalesce(many));
  t.same(
    out.map(([, packet]) => packet.length),
    [52 + 6400, 52 + 600],
  );
  const big = Array.from({ length: 50 }, (_, i) => tcp4(i * 1400, bytes(1400, i)));
  t.ok(
    pairs(coalesce(big)).every(([, packet]) => packet.length <= 0xffff),
    'never beyond the IPv4 length',
  );

  const src = parseAddress('2001:db8:1::1');
  const dst = parseAddress('2001:db8:2::1');
  const v6 = (seq: number) => {
    const segment = new Uint8Array(20 + 300);
    const view = new DataView(segment.buffer);
    view.setUint32(4, seq);
    segment[12] = 5 << 4;
    segment[13] = ACK;
    return buildPacket(src, dst, 6, segment);
  };
  const merged = pairs(coalesce([v6(0), v6(300), v6(600)]));
  t.equal(merged.length, 1);
  const [header, packet] = merged[0]!;
  t.equal(header.getUint8(1), 4, 'VIRTIO_NET_HDR_GSO_TCPV6');
  t.equal(header.getUint16(6, LE), 40);
  t.equal(new DataView(packet.buffer, packet.byteOffset).getUint16(4), 20 + 900, 'payload length');
});

t.test('stripHeader drops the virtio_net_hdr of a read', async (t) => {
  const read = Uint8Array.from([...new Uint8Array(10), 0x45, 1, 2]);
  t.same(stripHeader(read), Uint8Array.from([0x45, 1, 2]));
});

/** A read as the device hands it over: header then packet, at `shift` bytes into its buffer. */
function read(header: Uint8Array, packet: Uint8Array, shift = 0): Uint8Array {
  const buffer = new Uint8Array(shift + header.length + packet.length + 3);
  buffer.set(header, shift);
  buffer.set(packet, shift + header.length);
  return buffer.subarray(shift, shift + header.length + packet.length);
}

/** Whether a packet's TCP or UDP checksum verifies (the sum over pseudo-header and segment). */
function transportChecksumOk(packet: Uint8Array): boolean {
  const v4 = packet[0]! >> 4 === 4;
  const l4 = v4 ? (packet[0]! & 15) * 4 : 40;
  const length = packet.length - l4;
  const pseudo = new Uint8Array(v4 ? 12 : 40);
  if (v4) {
    pseudo.set(packet.subarray(12, 20));
    pseudo[9] = packet[9]!;
    new DataView(pseudo.buffer).setUint16(10, length);
  } else {
    pseudo.set(packet.subarray(8, 40));
    new DataView(pseudo.buffer).setUint32(32, length);
    pseudo[39] = packet[6]!;
  }
  return internetChecksum(packet, l4, packet.length, pseudoSum(pseudo)) === 0;
}

/** Everything but the IPv4 identification and header checksum, which segmentation sets anew. */
const withoutId = (packet: Uint8Array): string => {
  const copy = Uint8Array.from(packet);
  if (copy[0]! >> 4 === 4) copy.fill(0, 4, 6).fill(0, 10, 12);
  return Buffer.from(copy).toString('hex');
};

t.test('readPackets: a TCP super-packet comes out as the segments it was made of', async (t) => {
  for (const sizes of [
    [1348, 1348, 1348, 1348, 1000],
    [1348, 1348, 1347],
    [100, 100],
    [1, 1],
    [1348, 1348, 1348, 1348, 1348, 1348, 1348, 1348, 1348, 1348, 1348, 1348, 1348, 1348, 1348],
  ]) {
    let seq = 0xfffff000; // across the wrap of the sequence number
    const segments = sizes.map((size, i) => {
      const packet = tcp4(
        seq,
        bytes(size, i + 1).map((b, j) => (b * 31 + j) & 0xff),
      );
      seq = (seq + size) >>> 0;
      return packet;
    });
    const [header, packet] = coalesce(segments) as [Uint8Array, Uint8Array];
    t.equal(header[1], 1, 'one GSO_TCPV4 super-packet');
    for (const shift of [0, 1, 2, 3]) {
      const out: Uint8Array[] = [];
      t.ok(readPackets(read(header, packet, shift), out));
      t.same(out.map(withoutId), segments.map(withoutId), `${sizes.length} segments, shift ${shift}`);
      t.ok(out.every(transportChecksumOk), 'every TCP checksum verifies');
      t.ok(
        out.every((p) => internetChecksum(p, 0, 20) === 0),
        'every IPv4 header checksum verifies',
      );
      const ids = out.map((p) => new DataView(p.buffer, p.byteOffset).getUint16(4));
      t.same(
        ids,
        ids.map((_, i) => (ids[0]! + i) & 0xffff),
        'identification +1 per segment',
      );
    }
  }
});

t.test('readPackets: FIN and PSH on the last segment only, CWR on the first only', async (t) => {
  const segments = [0, 1, 2].map((i) => tcp4(i * 500, bytes(500, i)));
  const [header, packet] = coalesce(segments) as [Uint8Array, Uint8Array];
  packet[20 + 13] = 0x10 | 0x08 | 0x01 | 0x80; // ACK PSH FIN CWR on the super-packet
  const out: Uint8Array[] = [];
  t.ok(readPackets(read(header, packet), out));
  t.same(
    out.map((p) => p[20 + 13]),
    [0x10 | 0x80, 0x10, 0x10 | 0x08 | 0x01],
  );
  t.ok(out.every(transportChecksumOk));
});

t.test('readPackets: IPv6 super-packets, and checksums left to us (NEEDS_CSUM)', async (t) => {
  const src = parseAddress('2001:db8:1::1');
  const dst = parseAddress('2001:db8:2::1');
  const v6 = (seq: number, size: number) => {
    const segment = new Uint8Array(20 + size);
    const view = new DataView(segment.buffer);
    view.setUint16(0, 40000);
    view.setUint16(2, 5201);
    view.setUint32(4, seq);
    segment[12] = 5 << 4;
    segment[13] = ACK;
    for (let i = 20; i < segment.length; i++) segment[i] = (i * 7 + seq) & 0xff;
    return buildPacket(src, dst, 6, segment);
  };
  const segments = [v6(0, 1200), v6(1200, 1200), v6(2400, 77)];
  const [header, packet] = coalesce(segments) as [Uint8Array, Uint8Array];
  t.equal(header[1], 4, 'GSO_TCPV6');
  const out: Uint8Array[] = [];
  t.ok(readPackets(read(header, packet, 1), out));
  t.same(
    out.map((p) => Buffer.from(p).toString('hex')),
    segments.map((p) => Buffer.from(p).toString('hex')),
  );

  // A UDP datagram whose checksum field holds the pseudo-header's sum only, as the kernel leaves
  // it with TUN_F_CSUM: completed. Likewise TCP.
  for (const [protocol, field] of [
    [17, 6],
    [6, 16],
  ] as const) {
    const body = new Uint8Array(protocol === 17 ? 8 + 333 : 20 + 333);
    for (let i = 0; i < body.length; i++) body[i] = (i * 13) & 0xff;
    if (protocol === 17) new DataView(body.buffer).setUint16(4, body.length);
    else body[12] = 5 << 4;
    body[field] = 0;
    body[field + 1] = 1; // buildPacket computes a checksum only over a non-zero field
    const complete = buildPacket(SRC4, DST4, protocol, body);
    t.ok(transportChecksumOk(complete));
    const partial = Uint8Array.from(complete);
    const pseudo = new Uint8Array(12);
    pseudo.set(SRC4);
    pseudo.set(DST4, 4);
    pseudo[9] = protocol;
    new DataView(pseudo.buffer).setUint16(10, body.length);
    new DataView(partial.buffer).setUint16(20 + field, pseudoSum(pseudo));
    const vnet = new Uint8Array(VNET_HEADER_LENGTH);
    const h = new DataView(vnet.buffer);
    h.setUint8(0, 1); // NEEDS_CSUM
    h.setUint16(6, 20, LE);
    h.setUint16(8, field, LE);
    for (const shift of [0, 3]) {
      const got: Uint8Array[] = [];
      t.ok(readPackets(read(vnet, partial, shift), got));
      t.equal(
        Buffer.from(got[0]!).toString('hex'),
        Buffer.from(complete).toString('hex'),
        `protocol ${protocol}`,
      );
    }
  }

  // A plain packet goes through as a view, untouched.
  const plain = tcp4(0, bytes(10, 1));
  const got: Uint8Array[] = [];
  t.ok(readPackets(read(new Uint8Array(VNET_HEADER_LENGTH), plain), got));
  t.same(got, [plain]);
});

t.test('readPackets: a header that makes no sense gives nothing', async (t) => {
  const [header, packet] = coalesce([tcp4(0, bytes(100, 1)), tcp4(100, bytes(100, 2))]) as [
    Uint8Array,
    Uint8Array,
  ];
  const cases: [string, (h: Uint8Array, p: Uint8Array) => Uint8Array][] = [
    ['shorter than the header', () => new Uint8Array(5)],
    ['an unknown GSO type (UDP)', (h, p) => read(Uint8Array.from(h).fill(5, 1, 2), p)],
    ['GSO without NEEDS_CSUM', (h, p) => read(Uint8Array.from(h).fill(0, 0, 1), p)],
    ['GSO_TCPV4 on an IPv6 packet', (h, p) => read(h, Uint8Array.from(p).fill(0x65, 0, 1))],
    ['gso_size 0', (h, p) => read(Uint8Array.from(h).fill(0, 4, 6), p)],
    ['csum_start beyond the packet', (h, p) => read(Uint8Array.from(h).fill(0xff, 6, 8), p)],
    ['an IPv4 total length that is not the packet', (h, p) => read(h, Uint8Array.from(p).fill(0x7f, 3, 4))],
    ['no payload', (h, p) => read(h, p.subarray(0, 52))],
    [
      'a checksum field beyond the packet',
      (_, p) => read(Uint8Array.from([1, 0, 0, 0, 0, 0, 20, 0, 0xff, 0xff]), p),
    ],
  ];
  for (const [what, make] of cases) {
    const out: Uint8Array[] = [];
    t.notOk(readPackets(make(header, packet), out), what);
    t.same(out, [], what);
  }
});
