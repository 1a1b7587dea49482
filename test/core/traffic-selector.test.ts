import t from 'tap';
import { formatAddress, maskPrefix, parseAddress, prefixMask } from '../../src/core/address.js';
import {
  contains,
  formatTrafficSelector,
  intersect,
  parseTrafficSelector,
  sharedTrafficSelector,
  subnetPrefix,
} from '../../src/core/traffic-selector.js';
import { idFromTrafficSelector, trafficSelectorFromId } from '../../src/ikev1/identification.js';
import { IdType, NotifyType } from '../../src/ikev1/constants.js';
import { toHex } from '../../src/wire/bytes.js';
import { DecodeError } from '../../src/wire/errors.js';

t.test('addresses parse and format (RFC 5952 for IPv6)', async (t) => {
  t.equal(toHex(parseAddress('192.0.2.1')), 'c0000201');
  t.equal(toHex(parseAddress('2001:db8::1')), '20010db8000000000000000000000001');
  t.equal(toHex(parseAddress('::ffff:192.0.2.1')), '00000000000000000000ffffc0000201');
  for (const text of ['2001:db8::1', '::', '2001:db8:0:1:1:1:1:1', '2001:db8::1:0:0:1', 'fe80::', '::1']) {
    t.equal(formatAddress(parseAddress(text)), text, text);
  }
  t.throws(() => parseAddress('192.0.2.256'), RangeError);
  t.throws(() => parseAddress('vpn.example.com'), RangeError);
  t.equal(toHex(prefixMask(20, 4)), 'fffff000');
  t.equal(maskPrefix(prefixMask(57, 16)), 57);
  t.equal(maskPrefix(Uint8Array.of(255, 0, 255, 0)), undefined, 'a mask with holes has no prefix');
});

t.test('selectors from CIDRs, hosts and ranges', async (t) => {
  const subnet = parseTrafficSelector('198.51.100.77/24');
  t.equal(formatAddress(subnet.start), '198.51.100.0', 'host bits are cleared');
  t.equal(formatAddress(subnet.end), '198.51.100.255');
  t.equal(subnetPrefix(subnet), 24);
  t.equal(formatTrafficSelector(subnet), '198.51.100.0/24');
  t.equal(formatTrafficSelector(parseTrafficSelector('192.0.2.1', 17, 1701)), '192.0.2.1/32[udp/1701]');
  const range = parseTrafficSelector('192.0.2.10-192.0.2.20');
  t.equal(subnetPrefix(range), undefined);
  t.equal(formatTrafficSelector(range), '192.0.2.10-192.0.2.20');
  t.equal(formatTrafficSelector(parseTrafficSelector('2001:db8::/32')), '2001:db8::/32');
  t.throws(() => parseTrafficSelector('192.0.2.20-192.0.2.10'), /ends before it starts/);
  t.throws(() => parseTrafficSelector('192.0.2.0/33'), /does not fit/);
  t.throws(() => parseTrafficSelector('192.0.2.0/x'), /bad prefix/);
  t.throws(() => parseTrafficSelector('192.0.2.1-2001:db8::1'), /mixes/);
});

t.test('narrowing: intersection and containment', async (t) => {
  const wide = parseTrafficSelector('198.51.100.0/24');
  const host = parseTrafficSelector('198.51.100.7', 17, 1701);
  const narrowed = intersect(wide, host)!;
  t.equal(formatTrafficSelector(narrowed), '198.51.100.7/32[udp/1701]');
  t.ok(contains(wide, host));
  t.notOk(contains(host, wide));
  t.equal(intersect(wide, parseTrafficSelector('203.0.113.0/24')), undefined, 'disjoint ranges');
  t.equal(intersect(host, parseTrafficSelector('198.51.100.0/24', 6)), undefined, 'udp vs tcp');
  t.equal(intersect(wide, parseTrafficSelector('2001:db8::/32')), undefined, 'families differ');
  const overlap = intersect(
    parseTrafficSelector('192.0.2.0-192.0.2.100'),
    parseTrafficSelector('192.0.2.64/26'),
  )!;
  t.equal(formatTrafficSelector(overlap), '192.0.2.64-192.0.2.100');
});

t.test('IKEv1 IDs map to selectors and back, choosing the most specific ID type', async (t) => {
  const cases: [string, number, number, number][] = [
    ['198.51.100.0/24', 0, 0, IdType.ID_IPV4_ADDR_SUBNET],
    ['192.0.2.1', 17, 1701, IdType.ID_IPV4_ADDR],
    ['192.0.2.10-192.0.2.20', 0, 0, IdType.ID_IPV4_ADDR_RANGE],
    ['2001:db8::/48', 0, 0, IdType.ID_IPV6_ADDR_SUBNET],
    ['2001:db8::5', 6, 443, IdType.ID_IPV6_ADDR],
  ];
  for (const [text, protocol, port, idType] of cases) {
    const ts = parseTrafficSelector(text, protocol, port);
    const id = idFromTrafficSelector(ts);
    t.equal(id.idType, idType, `${text} as ID type ${idType}`);
    t.equal(id.port, port);
    t.same(trafficSelectorFromId(id), ts, `${text} round-trips`);
  }
  try {
    trafficSelectorFromId({
      kind: 'id',
      idType: IdType.ID_IPV4_ADDR_SUBNET,
      protocolId: 0,
      port: 0,
      data: new Uint8Array(5),
    });
    t.fail('a short subnet ID is accepted');
  } catch (error) {
    t.ok(error instanceof DecodeError);
    t.equal((error as DecodeError).notify, NotifyType.INVALID_ID_INFORMATION);
  }
  t.throws(
    () => idFromTrafficSelector({ ...parseTrafficSelector('192.0.2.1', 6), startPort: 80, endPort: 90 }),
    /one port/,
  );
});

t.test('sharedTrafficSelector: the connection’s own when equal, else a compact copy', async (t) => {
  const configured = [parseTrafficSelector('203.0.113.0/24')];
  const decoded = parseTrafficSelector('203.0.113.0/24');
  t.equal(sharedTrafficSelector(decoded, configured), configured[0], 'an equal selector is shared');
  const message = Uint8Array.of(0, 0, 198, 51, 100, 7, 0, 0);
  const client = {
    start: message.subarray(2, 6),
    end: message.subarray(2, 6),
    protocol: 17,
    startPort: 1701,
    endPort: 1701,
  };
  const copy = sharedTrafficSelector(client, configured);
  t.equal(copy.start, copy.end, "one address: one array for both ends (a gateway's client /32)");
  t.not(copy.start.buffer, message.buffer, 'not a view of the decoded message');
  t.same([...copy.start], [198, 51, 100, 7]);
  t.same([copy.protocol, copy.startPort, copy.endPort], [17, 1701, 1701]);
  // Decoders hand out Buffers, whose slice() is a view (unlike Uint8Array's): still a copy.
  const datagram = Buffer.from(message);
  const fromBuffer = sharedTrafficSelector(
    { ...client, start: datagram.subarray(2, 6), end: datagram.subarray(2, 6) },
    configured,
  );
  t.not(fromBuffer.start.buffer, datagram.buffer, 'not a view of a decoded Buffer either');
  t.ok(fromBuffer.start.buffer.byteLength <= 2048, 'kept bytes (wire/kept-bytes.ts): a small slab');
  const range = sharedTrafficSelector(parseTrafficSelector('198.51.100.0/25'), configured);
  t.same([formatTrafficSelector(range)], ['198.51.100.0/25'], 'a range keeps both ends');
  t.equal(range.start.buffer, range.end.buffer, 'in one buffer');
});
