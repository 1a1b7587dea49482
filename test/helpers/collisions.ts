import type { Test } from 'tap';
import { type ConnectionSpec, type Side, sitePair } from './engine-pair.js';

/**
 * Simultaneous rekeys, round after round, until each side has lost once: both ends must agree
 * every time on which redundant SA goes (exactly one of them logs `redundant`), and which end
 * that is must depend on the nonces, not on who started the IKE SA.
 */
export function eitherSideWins(
  t: Test,
  spec: Partial<ConnectionSpec>,
  dueOf: (a: Side) => number,
  redundant: RegExp,
  check: (a: Side, b: Side, round: number) => void = () => {},
): void {
  const losers = new Set<string>();
  for (let round = 0; round < 16 && losers.size < 2; round++) {
    const { pair, a, b } = sitePair({ both: spec });
    pair.initiate(a);
    pair.tickTogether(dueOf(a), [a, b]);
    pair.advance(5);
    check(a, b, round);
    const lost = (side: Side) => side.logs.some((line) => redundant.test(line));
    t.ok(lost(a) !== lost(b), `round ${round}: exactly one side deleted its redundant SA`);
    losers.add(lost(a) ? 'a' : 'b');
  }
  t.equal(losers.size, 2, 'each side lost at least once');
}
