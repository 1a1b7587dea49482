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

t.test('a peer-imposed lifetime shorter than the margin still leaves the SA some life', async (t) => {
  const lifetime = { seconds: 3600, rekeyMargin: 540, rekeyFuzz: 180 };
  const { rekeyAt, expiresAt } = schedule(0, lifetime, () => 0.99, 300);
  t.equal(expiresAt, 300);
  t.ok(rekeyAt >= 0 && rekeyAt < 300, `rekeyAt ${rekeyAt} lies within the 300 s lifetime`);
  t.equal(schedule(0, lifetime, () => 0, 300).rekeyAt, 30, 'margin capped at 90% of the lifetime');
});
