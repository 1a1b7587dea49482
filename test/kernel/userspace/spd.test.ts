import t from 'tap';
import { parseAddress } from '../../../src/core/address.js';
import { parseTrafficSelector } from '../../../src/core/traffic-selector.js';
import { buildPacket, type Flow, parsePacket } from '../../../src/kernel/userspace/packet.js';
import {
  compileSelector,
  flowMatchesAny,
  PolicyTable,
  selectorContains,
  selectorPrefixes,
} from '../../../src/kernel/userspace/spd.js';

const ts = (text: string, protocol = 0, port?: number) =>
  compileSelector(parseTrafficSelector(text, protocol, port));

function flow(src: string, dst: string, protocol: number, sport = 0, dport = 0): Flow {
  let payload: Uint8Array;
  if (protocol === 6 || protocol === 17) {
    const b = Buffer.alloc(20);
    b.writeUInt16BE(sport, 0);
    b.writeUInt16BE(dport, 2);
    payload = b;
  } else if (protocol === 1 || protocol === 58) {
    payload = Uint8Array.from([sport >> 8, sport & 0xff, 0, 0, 0, 0, 0, 0]);
  } else {
    payload = new Uint8Array(8);
  }
  return parsePacket(buildPacket(parseAddress(src), parseAddress(dst), protocol, payload))!;
}

t.test('route prefixes from selectors', async (t) => {
  t.same(selectorPrefixes(parseTrafficSelector('10.2.0.0/16')), ['10.2.0.0/16']);
  t.same(selectorPrefixes(parseTrafficSelector('192.0.2.7')), ['192.0.2.7/32']);
  t.same(selectorPrefixes(parseTrafficSelector('0.0.0.0/0')), ['0.0.0.0/0']);
  t.same(selectorPrefixes(parseTrafficSelector('192.0.2.10-192.0.2.20')), [
    '192.0.2.10/31',
    '192.0.2.12/30',
    '192.0.2.16/30',
    '192.0.2.20/32',
  ]);
  t.same(selectorPrefixes(parseTrafficSelector('0.0.0.0-255.255.255.254')).length, 32);
  t.same(selectorPrefixes(parseTrafficSelector('2001:db8::/32')), ['2001:db8::/32']);
  t.same(selectorPrefixes(parseTrafficSelector('::/0')), ['::/0']);
  t.same(selectorPrefixes(parseTrafficSelector('2001:db8::1-2001:db8::2')), [
    '2001:db8::1/128',
    '2001:db8::2/128',
  ]);
});

t.test('most specific policy first; newest first between equal ones; SAs before traps', async (t) => {
  const table = new PolicyTable<string>();
  table.add([ts('10.1.0.0/16')], [ts('10.0.0.0/8')], 'wide');
  table.add([ts('10.1.0.0/16')], [ts('10.2.0.0/16')], 'narrow');
  table.add([ts('10.1.0.0/16', 17)], [ts('10.2.0.0/16', 17, 53)], 'dns');
  t.equal(table.size, 3);
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 6, 1000, 80)), 'narrow');
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 17, 1000, 53)), 'dns');
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 17, 1000, 54)), 'narrow');
  t.equal(table.lookup(flow('10.1.0.5', '10.9.0.7', 6, 1000, 80)), 'wide');
  t.equal(table.lookup(flow('10.7.0.5', '10.2.0.7', 6, 1000, 80)), undefined, 'source outside');
  t.equal(table.lookup(flow('2001:db8::1', '2001:db8::2', 6, 1, 2)), undefined, 'other family');

  // A rekeyed child with the same selectors takes over; removing it hands back.
  table.add([ts('10.1.0.0/16')], [ts('10.2.0.0/16')], 'narrow-rekeyed');
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 6, 1000, 80)), 'narrow-rekeyed');
  table.remove('narrow-rekeyed');
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 6, 1000, 80)), 'narrow');

  // New selectors for an older entry keep its place: it does not take over from a newer one.
  table.add([ts('10.1.0.0/16')], [ts('10.2.0.0/16')], 'newer');
  table.replace([ts('10.1.0.0/16')], [ts('10.2.0.0/16')], 'narrow');
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 6, 1000, 80)), 'newer');
  table.remove('newer');

  // A trap added later loses against an SA with the same selectors.
  table.add([ts('10.1.0.0/16')], [ts('10.2.0.0/16')], 'trap', 'trap');
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 6, 1000, 80)), 'narrow');
  table.remove('narrow');
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 6, 1000, 80)), 'trap');
});

t.test('several selectors per side, both families', async (t) => {
  const table = new PolicyTable<string>();
  table.add([ts('10.1.0.0/16'), ts('2001:db8:1::/48')], [ts('10.2.0.0/16'), ts('2001:db8:2::/48')], 'child');
  t.equal(table.size, 2, 'only same-family pairs');
  t.equal(table.lookup(flow('2001:db8:1::5', '2001:db8:2::7', 17, 1, 2)), 'child');
  t.equal(table.lookup(flow('10.1.0.5', '10.2.0.7', 1, 0x0800)), 'child');
  t.equal(table.lookup(flow('2001:db8:1::5', '2001:db8:3::7', 17, 1, 2)), undefined);
});

t.test('ports: ranges, ICMP type and code, protocols without ports, OPAQUE', async (t) => {
  const any = ts('10.0.0.0/8');
  const http = ts('10.0.0.0/8', 6, 80);
  t.ok(flowMatchesAny(flow('10.0.0.1', '10.0.0.2', 6, 5000, 80), [any], [http]));
  t.notOk(flowMatchesAny(flow('10.0.0.1', '10.0.0.2', 6, 5000, 81), [any], [http]));
  t.notOk(flowMatchesAny(flow('10.0.0.1', '10.0.0.2', 17, 5000, 80), [any], [http]), 'UDP is not TCP');
  const echo = compileSelector({
    ...parseTrafficSelector('10.0.0.0/8', 1),
    startPort: 0x0800,
    endPort: 0x08ff,
  });
  t.ok(flowMatchesAny(flow('10.0.0.1', '10.0.0.2', 1, 0x0800), [any], [echo]), 'echo request');
  t.notOk(flowMatchesAny(flow('10.0.0.1', '10.0.0.2', 1, 0x0000), [any], [echo]), 'echo reply');
  const gre = flow('10.0.0.1', '10.0.0.2', 47);
  t.ok(flowMatchesAny(gre, [any], [any]), 'no ports: any port matches');
  t.notOk(flowMatchesAny(gre, [any], [ts('10.0.0.0/8', 47, 5)]), 'no ports: a port selector does not');
  const opaque = compileSelector({ ...parseTrafficSelector('10.0.0.0/8', 47), startPort: 65535, endPort: 0 });
  t.ok(flowMatchesAny(gre, [any], [opaque]), 'OPAQUE matches a packet without ports');
  t.notOk(flowMatchesAny(flow('10.0.0.1', '10.0.0.2', 6, 1, 2), [any], [opaque]));
});

t.test('selectorContains', async (t) => {
  t.ok(selectorContains(ts('192.0.2.0/24'), parseAddress('192.0.2.200')));
  t.notOk(selectorContains(ts('192.0.2.0/24'), parseAddress('192.0.3.1')));
  t.notOk(selectorContains(ts('0.0.0.0/0'), parseAddress('::1')));
  t.ok(selectorContains(ts('::/0'), parseAddress('::1')));
});
