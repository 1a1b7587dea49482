import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { HeapMode, type HeapModeName } from '../../src/daemon/heap-mode.js';
import { until } from '../helpers/daemon-pair.js';

// The switch between V8's defaults and its tuning for memory, watched through the flags it sets.
// Windows of 5 s and a threshold of 2 negotiations/s (10 in a window mean load); memory mode ends
// 3 s after the last full GC, or after 60 s without one. Timers and full GCs are stepped by hand,
// so nothing here depends on timing or on V8.

const WINDOW = 5000;
const SETTLE = 3000;
const BOUND = 60000;
const MB = 1024 * 1024;

function watched() {
  const flags: string[] = [];
  const switches: HeapModeName[] = [];
  const timers: { callback: () => void; ms: number; cancelled: boolean }[] = [];
  const gcWatchers: { callback: () => void; cancelled: boolean }[] = [];
  const heap = { used: 10 * MB };
  const mode = new HeapMode({
    largeHeap: 256 * MB,
    heapUsed: () => heap.used,
    threshold: 2,
    window: WINDOW / 1000,
    settle: SETTLE / 1000,
    settleBound: BOUND / 1000,
    setFlags: (value) => flags.push(value),
    onSwitch: (value) => switches.push(value),
    schedule: (callback, ms) => {
      const timer = { callback, ms, cancelled: false };
      timers.push(timer);
      return { cancel: () => (timer.cancelled = true) };
    },
    observeFullGc: (callback) => {
      const watcher = { callback, cancelled: false };
      gcWatchers.push(watcher);
      return { cancel: () => (watcher.cancelled = true) };
    },
  });
  const pending = (ms?: number) =>
    timers.filter((timer) => !timer.cancelled && (ms === undefined || timer.ms === ms));
  /** Runs the one pending timer of `ms`. */
  const fire = (ms: number) => {
    const [timer, ...more] = pending(ms);
    if (!timer || more.length)
      throw new Error(`${pending(ms).length} timers of ${ms} ms pending, expected one`);
    timer.cancelled = true;
    timer.callback();
  };
  const fullGc = () => {
    for (const watcher of gcWatchers) if (!watcher.cancelled) watcher.callback();
  };
  const watching = () => gcWatchers.filter((watcher) => !watcher.cancelled).length;
  const started = (count: number) => {
    for (let i = 0; i < count; i++) mode.negotiationStarted();
  };
  return { flags, switches, pending, fire, fullGc, watching, started, mode, heap };
}

t.test('a daemon that has just started gives memory back, then rests at the defaults', async (t) => {
  const { flags, mode, pending, fire, fullGc, watching } = watched();
  t.equal(mode.mode, 'memory');
  t.same(flags, ['--optimize-for-size']);
  t.equal(watching(), 1, 'full GCs are watched');
  t.equal(pending(BOUND).length, 1, 'with a bound in case none comes');
  fullGc();
  t.equal(pending(BOUND).length, 0, 'a full GC came: the bound is off');
  t.equal(pending(SETTLE).length, 1);
  fullGc(); // V8's memory reducer runs a few in a row
  t.equal(pending(SETTLE).length, 1, 'each full GC starts the settle again');
  fire(SETTLE);
  t.equal(mode.mode, 'rest');
  t.same(flags, ['--optimize-for-size', '--no-optimize-for-size']);
  t.equal(watching(), 0, 'no more GCs watched');
  t.equal(pending().length, 0, 'and no timer: a quiet daemon is left alone');
});

t.test('memory mode ends after its bound if V8 runs no full GC', async (t) => {
  const { mode, fire, watching } = watched();
  fire(BOUND);
  t.equal(mode.mode, 'rest');
  t.equal(watching(), 0);
});

t.test('a window with as many negotiations as the threshold switches to speed at once', async (t) => {
  const { flags, switches, mode, pending, started, watching, fire } = watched();
  fire(BOUND);
  started(9);
  t.equal(mode.mode, 'rest', 'nine in a window is below the mark');
  t.equal(pending(WINDOW).length, 1, 'the first negotiation opened a window');
  started(1);
  t.equal(mode.mode, 'speed', 'the tenth passes it, before the window ends');
  t.same(flags.slice(-1), ['--no-optimize-for-size']);
  started(100);
  t.same(switches, ['memory', 'rest', 'speed'], 'more of the same changes nothing');
  t.equal(pending(WINDOW).length, 1, 'one window at a time');
  t.equal(watching(), 0);
});

t.test('load in memory mode switches to speed and stops giving memory back', async (t) => {
  const { mode, pending, started, watching } = watched();
  started(10);
  t.equal(mode.mode, 'speed');
  t.equal(watching(), 0, 'full GCs no longer watched');
  t.equal(pending(BOUND).length + pending(SETTLE).length, 0, 'nor memory mode timed');
});

t.test('load that goes on keeps speed from window to window', async (t) => {
  const { switches, mode, started, fire } = watched();
  for (let window = 0; window < 5; window++) {
    started(10);
    fire(WINDOW);
    t.equal(mode.mode, 'speed');
  }
  t.same(switches, ['memory', 'speed'], 'never back to memory under load');
});

t.test('the first window below the threshold gives memory back, even one with none', async (t) => {
  const { switches, mode, started, fire, fullGc, pending } = watched();
  started(10);
  fire(WINDOW);
  t.equal(mode.mode, 'speed', 'a busy window keeps speed');
  t.equal(pending(WINDOW).length, 1, 'and opens the next, though nothing came yet');
  fire(WINDOW);
  t.equal(mode.mode, 'memory', 'a window with nothing in it ends speed');
  t.equal(pending(WINDOW).length, 0, 'quiet: no window');
  fullGc();
  fire(SETTLE);
  t.same(switches, ['memory', 'speed', 'memory', 'rest']);
  started(10);
  t.equal(mode.mode, 'speed', 'the next burst switches again');
  fire(WINDOW);
  started(9);
  fire(WINDOW);
  t.equal(mode.mode, 'memory', 'nine in a window is quiet');
});

t.test('a trickle below the threshold never leaves rest', async (t) => {
  const { switches, mode, started, fire } = watched();
  fire(BOUND);
  for (let window = 0; window < 4; window++) {
    started(9);
    fire(WINDOW);
  }
  t.equal(mode.mode, 'rest');
  t.same(switches, ['memory', 'rest'], 'no flag set again, no GC watched');
});

t.test('close leaves no timer and no observer; the flags stay as they are', async (t) => {
  const { mode, started, pending, flags, watching } = watched();
  mode.close();
  t.equal(watching(), 0);
  t.equal(pending().length, 0);
  started(10);
  mode.close();
  t.equal(pending().length, 0);
  t.equal(mode.mode, 'speed');
  t.same(flags, ['--optimize-for-size', '--no-optimize-for-size']);
});

t.test('a real full GC, as perf_hooks reports it, ends memory mode after the settle', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const switches: HeapModeName[] = [];
  // V8's flags of this test process stay as they are: only the GC observer is real.
  const mode = new HeapMode({
    settle: 0.05,
    settleBound: 60,
    setFlags: () => {},
    onSwitch: (m) => switches.push(m),
  });
  t.teardown(() => mode.close());
  t.equal(mode.mode, 'memory');
  gc();
  // Within the helper's 5 s, far inside the 60 s bound: the full GC was seen.
  await until(() => mode.mode === 'rest');
  t.same(switches, ['memory', 'rest']);
});

t.test("a large heap's growth is bounded at a window's end, and unbounded below half the mark", async (t) => {
  const { flags, mode, started, fire, heap } = watched();
  fire(BOUND);
  const growth = () => flags.filter((flag) => flag.startsWith('--heap-growing-percent'));
  started(10);
  heap.used = 300 * MB;
  t.same(growth(), [], 'checked at the end of a window, not per negotiation');
  fire(WINDOW);
  t.ok(mode.bounded);
  t.same(growth(), ['--heap-growing-percent=50']);
  heap.used = 200 * MB;
  started(10);
  fire(WINDOW);
  t.ok(mode.bounded, 'still above half the mark (a full GC has just freed garbage, say)');
  heap.used = 100 * MB;
  started(10);
  fire(WINDOW);
  t.notOk(mode.bounded);
  t.same(growth(), ['--heap-growing-percent=50', '--heap-growing-percent=0'], "back to V8's own factor");
  started(10);
  fire(WINDOW);
  t.equal(growth().length, 2, 'no flag set again while nothing changes');
});
