import t from 'tap';
import type { Action } from '../../src/core/actions.js';
import { DeadlineTimer } from '../../src/daemon/deadline-timer.js';
import { until } from '../helpers/daemon-pair.js';

/**
 * The one timer the daemon and the load generator run their engines on: it ticks the engine when
 * its deadline comes, is moved only for an earlier deadline, and ticks nothing after stop().
 */

function fakeEngine(deadlines: number[]) {
  const ticks: number[] = [];
  return {
    ticks,
    deadlines,
    nextTimeout: () => deadlines[0],
    tick(now: number): Action[] {
      ticks.push(now);
      while (deadlines.length && deadlines[0]! <= now) deadlines.shift();
      return [];
    },
  };
}

const clock = () => performance.now() / 1000;

t.test('ticks the engine at its deadline and arms the next', async (t) => {
  const now = clock();
  const engine = fakeEngine([now + 0.02, now + 0.04]);
  let applied = 0;
  const timer = new DeadlineTimer(engine, clock, () => applied++);
  t.teardown(() => timer.stop());
  timer.arm();
  await until(() => engine.deadlines.length === 0, 2000);
  t.ok(engine.ticks.length >= 2, 'both deadlines ticked');
  t.equal(applied, engine.ticks.length, "each tick's actions applied");
});

t.test('an earlier deadline moves the armed timer', async (t) => {
  const now = clock();
  const engine = fakeEngine([now + 3600]);
  const timer = new DeadlineTimer(engine, clock, () => {});
  t.teardown(() => timer.stop());
  timer.arm();
  engine.deadlines.unshift(now + 0.01); // an input brought a deadline forward
  timer.arm();
  await until(() => engine.ticks.length > 0, 2000);
  t.equal(engine.deadlines[0], now + 3600, 'the early deadline ticked, the hour-long one waits');
});

t.test('stop(): no tick after it, and arm() does nothing', async (t) => {
  const engine = fakeEngine([clock() + 0.01]);
  const timer = new DeadlineTimer(engine, clock, () => {});
  timer.arm();
  timer.stop();
  timer.arm();
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.same(engine.ticks, [], 'nothing ticked');
});
