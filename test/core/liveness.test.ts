import t from 'tap';
import { sitePair } from '../helpers/engine-pair.js';

/**
 * Liveness deadlines in floating point: 1016.6 + 10 is 1026.6, yet 1026.6 - 1016.6 is less than
 * 10. A check of "silent >= delay" re-armed the liveness deadline at now, and the tick fired it
 * forever (found by fuzz/ikev2-engine). Without the fix this test never returns.
 */
t.setTimeout(60_000);

for (const version of [1, 2] as const) {
  t.test(
    `IKEv${version}: a liveness deadline that lands on now in floating point is served once`,
    async (t) => {
      const [heard, delay, now] = [1016.6, 10, 1026.6];
      t.ok(heard + delay === now && now - heard < delay, 'the arithmetic this test is about');
      const { pair, a, b } = sitePair({
        both: { version, dpd: { delay: 10, timeout: 30, action: 'clear' } },
      });
      pair.now = 1016.6;
      pair.initiate(a);
      t.ok(a.installed.size === 1 && b.installed.size === 1, 'up, last heard at 1016.6');
      const actions = a.engine.tick(1026.6);
      t.ok(actions.length < 100, `the tick returned (${actions.length} actions)`);
      t.ok((a.engine.nextTimeout() ?? Infinity) > 1026.6, 'the next deadline is later than now');
    },
  );
}
