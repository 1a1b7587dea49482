import t from 'tap';
import { parseAddress } from '../../../src/core/address.js';
import {
  buildPacket,
  insertEsp,
  internetChecksum,
  onesComplementSum,
  parsePacket,
  setIpv4HeaderChecksum,
  setTransportChecksum,
  upperLayer,
} from '../../../src/kernel/userspace/packet.js';
import { fromHex, toHex } from '../../../src/wire/bytes.js';

/**
 * An independent checksum for the assertions: the sum over 32-bit big-endian words with the
 * carries folded at the end (RFC 1071 section 2 (B), "parallel summation"), not the 16-bit loop
 * the implementation uses.
 */
function referenceChecksum(...parts: Uint8Array[]): number {
  const bytes = Buffer.concat(parts.map((p) => Buffer.from(p)));
  const padded = Buffer.alloc(Math.ceil(bytes.length / 4) * 4);
  bytes.copy(padded);
  let sum = 0n;
  for (let i = 0; i < padded.length; i += 4) sum += BigInt(padded.readUInt32BE(i));
  while (sum >> 16n) sum = (sum & 0xffffn) + (sum >> 16n);
  return Number(~sum & 0xffffn);
}

function pseudoHeader(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): Uint8Array {
  if (src.length === 4) {
    const p = Buffer.alloc(12);
    p.set(src, 0);
    p.set(dst, 4);
    p[9] = protocol;
    p.writeUInt16BE(length, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  p.set(src, 0);
  p.set(dst, 16);
  p.writeUInt32BE(length, 32);
  p[39] = protocol;
  return p;
}

/** A segment's checksum is right when summing it with its pseudo-header gives zero. */
function transportChecksumValid(
  src: Uint8Array,
  dst: Uint8Array,
  protocol: number,
  segment: Uint8Array,
): boolean {
  const pseudo = protocol === 1 ? new Uint8Array(0) : pseudoHeader(src, dst, protocol, segment.length);
  return referenceChecksum(pseudo, segment) === 0;
}

function udp(src: string, dst: string, sport: number, dport: number, data: Uint8Array): Uint8Array {
  const s = parseAddress(src);
  const d = parseAddress(dst);
  const segment = Buffer.alloc(8 + data.length);
  segment.writeUInt16BE(sport, 0);
  segment.writeUInt16BE(dport, 2);
  segment.writeUInt16BE(segment.length, 4);
  segment.set(data, 8);
  segment.writeUInt16BE(referenceChecksum(pseudoHeader(s, d, 17, segment.length), segment) || 0xffff, 6);
  return buildPacket(s, d, 17, segment);
}

t.test('RFC 1071 section 3 numerical example', async (t) => {
  // Bytes 00 01 f2 03 f4 f5 f6 f7: the one's complement sum is ddf2, the checksum its complement.
  const bytes = fromHex('0001f203f4f5f6f7');
  t.equal(onesComplementSum(bytes), 0xddf2);
  t.equal(internetChecksum(bytes), 0x220d);
  t.equal(internetChecksum(bytes, 0, 8, 0), referenceChecksum(bytes));
  t.equal(onesComplementSum(fromHex('01')), 0x0100, 'an odd byte is the high half of a word');
});

t.test('IPv4 header checksums of RFC 3602 section 4', async (t) => {
  for (const header of [
    '4500005408f200004001f9fec0a87b03c0a87b64', // case #5 original
    '4500007c08f200004032f9a5c0a87b03c0a87b64', // case #5 with ESP
    '4500008c090500004032f91ec0a87b03c0a87bc8', // case #7 outer
    '45000054090400004001f988c0a87b03c0a87bc8', // case #7 inner
  ]) {
    const bytes = fromHex(header);
    t.equal(internetChecksum(bytes), 0, `${header} verifies`);
    const expected = header.slice(20, 24);
    bytes[10] = 0xde;
    bytes[11] = 0xad;
    setIpv4HeaderChecksum(bytes);
    t.equal(toHex(bytes.subarray(10, 12)), expected, 'recomputed');
  }
});

t.test('parsing IPv4: addresses, protocol, ports, fragments, malformed', async (t) => {
  const packet = udp('10.1.0.5', '10.2.0.7', 5000, 53, Buffer.from('hello'));
  const flow = parsePacket(packet)!;
  t.equal(flow.version, 4);
  t.equal(flow.src4, 0x0a010005);
  t.equal(flow.dst4, 0x0a020007);
  t.equal(toHex(flow.dst), '0a020007');
  t.equal(flow.protocol, 17);
  t.equal(flow.srcPort, 5000);
  t.equal(flow.dstPort, 53);
  t.equal(flow.headerLength, 20);
  t.equal(flow.totalLength, packet.length);
  t.notOk(flow.fragment);
  t.equal(toHex(upperLayer(packet, flow).subarray(8)), toHex(Buffer.from('hello')));

  // Trailing bytes beyond the total length are not the packet's.
  const longer = Buffer.concat([packet, Buffer.alloc(7)]);
  t.equal(parsePacket(longer)!.totalLength, packet.length);

  // IP options: IHL 6.
  const withOptions = Buffer.concat([packet.subarray(0, 20), Buffer.from([1, 1, 1, 0]), packet.subarray(20)]);
  withOptions[0] = 0x46;
  withOptions.writeUInt16BE(withOptions.length, 2);
  const o = parsePacket(withOptions)!;
  t.equal(o.headerLength, 24);
  t.equal(o.srcPort, 5000);

  // First fragment (MF): ports known; later fragment: no ports.
  const first = Buffer.from(packet);
  first[6] = 0x20;
  t.ok(parsePacket(first)!.fragment);
  t.equal(parsePacket(first)!.dstPort, 53);
  const later = Buffer.from(packet);
  later.writeUInt16BE(0x0003, 6);
  t.equal(parsePacket(later)!.dstPort, -1);
  t.equal(parsePacket(later)!.srcPort, -1);

  // ICMP echo request: type 8, code 0 in both "ports".
  const icmp = buildPacket(
    parseAddress('10.1.0.5'),
    parseAddress('10.2.0.7'),
    1,
    fromHex('0800f7ff00000000'),
  );
  t.equal(parsePacket(icmp)!.srcPort, 0x0800);
  t.equal(parsePacket(icmp)!.dstPort, 0x0800);

  // GRE: no ports.
  t.equal(
    parsePacket(buildPacket(parseAddress('10.0.0.1'), parseAddress('10.0.0.2'), 47, new Uint8Array(8)))!
      .srcPort,
    -1,
  );

  for (const [what, bytes] of [
    ['empty', new Uint8Array(0)],
    ['short', packet.subarray(0, 19)],
    ['version 5', Uint8Array.from([0x55, ...packet.subarray(1)])],
    ['IHL 4', Uint8Array.from([0x44, ...packet.subarray(1)])],
    ['total length beyond the buffer', packet.subarray(0, packet.length - 1)],
  ] as const) {
    t.equal(parsePacket(bytes), undefined, what);
  }
});

t.test('parsing IPv6 with extension headers', async (t) => {
  const src = parseAddress('2001:db8:1::5');
  const dst = parseAddress('2001:db8:2::7');
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(443, 2);
  tcp[12] = 0x50;
  const plain = buildPacket(src, dst, 6, tcp);
  const f = parsePacket(plain)!;
  t.equal(f.version, 6);
  t.equal(f.protocol, 6);
  t.equal(f.srcPort, 40000);
  t.equal(f.dstPort, 443);
  t.equal(f.headerLength, 40);
  t.equal(f.src4, 0);

  // Hop-by-hop (8 bytes) then a fragment header, then TCP.
  const hop = Buffer.from([44, 0, 1, 4, 0, 0, 0, 0]);
  const frag = Buffer.from([6, 0, 0, 0, 0, 0, 0, 1]); // offset 0, M = 0
  const withExt = Buffer.concat([plain.subarray(0, 40), hop, frag, tcp]);
  withExt[6] = 0;
  withExt.writeUInt16BE(withExt.length - 40, 4);
  const e = parsePacket(withExt)!;
  t.equal(e.protocol, 6);
  t.equal(e.headerLength, 56);
  t.equal(e.dstPort, 443);
  t.ok(e.fragment);
  const laterFrag = Buffer.from(withExt);
  laterFrag.writeUInt16BE(8 << 3, 50); // fragment offset 8
  t.equal(parsePacket(laterFrag)!.dstPort, -1);
  t.equal(parsePacket(withExt.subarray(0, 50)), undefined, 'cut inside the extension headers');
});

t.test(
  'transport mode rebuild: checksums right for the new addresses (RFC 3948 3.1.2, simply)',
  async (t) => {
    const data = Buffer.from('a UDP datagram whose checksum the sender computed for other addresses');
    // The sender's view: from its private address to ours.
    const sent = udp('10.0.0.2', '192.0.2.1', 4000, 53, data);
    const segment = upperLayer(sent, parsePacket(sent)!);
    // Rebuilt as it arrives behind the NAT: from the NAT's public address.
    const nat = parseAddress('198.51.100.9');
    const us = parseAddress('192.0.2.1');
    const rebuilt = buildPacket(nat, us, 17, segment);
    const flow = parsePacket(rebuilt)!;
    t.equal(internetChecksum(rebuilt, 0, 20), 0, 'IPv4 header checksum');
    t.equal(toHex(flow.src), toHex(nat));
    t.equal(flow.srcPort, 4000);
    t.ok(transportChecksumValid(nat, us, 17, rebuilt.subarray(20)), 'UDP checksum valid for the NAT address');
    t.notOk(transportChecksumValid(nat, us, 17, segment), 'the original was not');
    t.equal(toHex(rebuilt.subarray(28)), toHex(data), 'data untouched');

    // TCP over IPv6.
    const tcp = Buffer.alloc(32);
    tcp.writeUInt16BE(22, 0);
    tcp.writeUInt16BE(50000, 2);
    tcp[12] = 0x50;
    tcp.write('ssh', 20);
    const s6 = parseAddress('2001:db8::1');
    const d6 = parseAddress('2001:db8::2');
    const six = buildPacket(s6, d6, 6, tcp);
    t.ok(transportChecksumValid(s6, d6, 6, six.subarray(40)), 'TCP/IPv6 checksum');
    t.equal(Buffer.from(six).readUInt16BE(4), 32, 'payload length');

    // ICMP's checksum does not cover addresses: RFC 3602 case #5's echo request keeps 0ebd.
    const echo = fromHex(
      '08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637',
    );
    const rebuiltEcho = buildPacket(parseAddress('192.168.123.3'), parseAddress('192.168.123.100'), 1, echo);
    t.equal(toHex(rebuiltEcho.subarray(20)), toHex(echo));

    // ICMPv6 covers the pseudo-header.
    const icmp6 = Buffer.from([128, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3]);
    const six6 = buildPacket(s6, d6, 58, icmp6);
    t.ok(transportChecksumValid(s6, d6, 58, six6.subarray(40)), 'ICMPv6 checksum');

    // An IPv4 UDP checksum of zero means none, and stays none.
    const noSum = Buffer.from(segment);
    noSum.writeUInt16BE(0, 6);
    t.equal(Buffer.from(buildPacket(nat, us, 17, noSum)).readUInt16BE(26), 0);
    t.notOk(setTransportChecksum(Buffer.from(noSum), 0, noSum.length, 4, 17, nat, us));

    t.throws(() => buildPacket(nat, us, 17, new Uint8Array(65536)), RangeError);
  },
);

t.test('insertEsp rewrites protocol, length and checksum (RFC 3602 case #5)', async (t) => {
  const original = fromHex('4500005408f200004001f9fec0a87b03c0a87b64' + '00'.repeat(64));
  const esp = new Uint8Array(104);
  const out = insertEsp(original, esp);
  t.equal(toHex(out.subarray(0, 20)), '4500007c08f200004032f9a5c0a87b03c0a87b64');
  t.throws(() => insertEsp(new Uint8Array(10), esp), RangeError);
});
