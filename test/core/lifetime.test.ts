import t from 'tap';
import { schedule } from '../../src/core/lifetime.js';

t.test('rekey starts the configured margin (minus fuzz) before the hard lifetime', async (t) => {
  const lifetime = { seconds: 60, rekeyMargin: 50, rekeyFuzz: 6 };
  t.same(
    schedule(100, lifetime, () => 0),
    { rekeyAt: 110, expiresAt: 160 },
  );
  t.same(
    schedule(100, lifetime, () => 0.5),
    { rekeyAt: 107, expiresAt: 160 },
  );
});

t.test('a peer-imposed lifetime shorter than ours scales the margin and fuzz in proportion', async (t) => {
  const lifetime = { seconds: 3600, rekeyMargin: 540, rekeyFuzz: 180 };
  const { rekeyAt, expiresAt } = schedule(0, lifetime, () => 0.99, 300);
  t.equal(expiresAt, 300);
  t.ok(rekeyAt >= 0 && rekeyAt < 300, `rekeyAt ${rekeyAt} lies within the 300 s lifetime`);
  t.equal(schedule(0, lifetime, () => 0, 300).rekeyAt, 255, 'margin 15% of 300 s, as of 3600 s');
  t.equal(schedule(0, lifetime, () => 0.5, 300).rekeyAt, 247.5, 'fuzz 5% of 300 s, as of 3600 s');
  // strongSwan's rekey_time = 8s: replaced after 6.8 s, not after 10% of its life.
  t.equal(Math.round(schedule(0, lifetime, () => 0, 8).rekeyAt * 100) / 100, 6.8);
});

t.test('a margin configured above 90% of the lifetime leaves the SA 10% of its life', async (t) => {
  t.equal(schedule(0, { seconds: 100, rekeyMargin: 99, rekeyFuzz: 0 }, () => 0).rekeyAt, 10);
});
