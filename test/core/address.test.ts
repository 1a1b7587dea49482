import t from 'tap';
import { alignedBlocks, formatAddress, parseAddress, rangePrefixes } from '../../src/core/address.js';

const prefixes = (start: string, end: string) =>
  rangePrefixes(parseAddress(start), parseAddress(end)).map((p) => `${formatAddress(p.address)}/${p.prefix}`);

t.test('an address range as the fewest prefixes that cover it exactly', async (t) => {
  t.same(prefixes('192.0.2.0', '192.0.2.255'), ['192.0.2.0/24'], 'one prefix when it is one');
  t.same(prefixes('192.0.2.10', '192.0.2.20'), [
    '192.0.2.10/31',
    '192.0.2.12/30',
    '192.0.2.16/30',
    '192.0.2.20/32',
  ]);
  t.same(prefixes('0.0.0.0', '255.255.255.255'), ['0.0.0.0/0'], 'everything');
  t.same(prefixes('203.0.113.7', '203.0.113.7'), ['203.0.113.7/32'], 'one address');
  t.same(prefixes('2001:db8::', '2001:db8::1:ffff'), ['2001:db8::/111'], 'IPv6');
});

t.test('port ranges split the same way (for masked port selectors)', async (t) => {
  t.same(alignedBlocks(1000n, 1003n, 16), [{ base: 1000n, size: 2 }]);
  t.same(alignedBlocks(0n, 65535n, 16), [{ base: 0n, size: 16 }]);
  t.same(alignedBlocks(5n, 6n, 16), [
    { base: 5n, size: 0 },
    { base: 6n, size: 0 },
  ]);
});
