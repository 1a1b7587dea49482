import t from 'tap';
import { LISTED_SPIS, leftoversRemoved } from '../../src/kernel/leftovers.js';

t.test('names the removed SAs by SPI, as the status and the install lines print them', async (t) => {
  t.equal(
    leftoversRemoved([0xc6b22367, 0x0000beef], 3),
    'removed 2 SA(s) (SPIs c6b22367, 0000beef) and 3 policy(ies) left behind by an earlier run',
  );
  t.equal(leftoversRemoved([], 3), 'removed 0 SA(s) and 3 policy(ies) left behind by an earlier run');
});

t.test('a run killed with many SAs still makes one short line', async (t) => {
  const spis = Array.from({ length: 5000 }, (_, i) => 0xc0000000 + i);
  const line = leftoversRemoved(spis, 15000);
  t.match(
    line,
    /^removed 5000 SA\(s\) \(SPIs c0000000, c0000001, .*c0000007 and 4992 more\) and 15000 policy/,
  );
  t.equal(line.match(/c0/g)?.length, LISTED_SPIS, `only the first ${LISTED_SPIS} SPIs named`);
  t.ok(line.length < 200, `${line.length} characters`);
});
