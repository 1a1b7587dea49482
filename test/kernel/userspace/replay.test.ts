import t from 'tap';
import { ReplayWindow, SEQUENCE_MAX, SequenceCounter } from '../../../src/kernel/userspace/replay.js';

t.test('window edges (RFC 4303 section 3.4.3)', async (t) => {
  const w = new ReplayWindow(64);
  t.equal(w.check(0), 'invalid', 'sequence number 0 is never sent');
  t.equal(w.check(2 ** 32), 'invalid');
  t.ok(w.accept(1));
  t.equal(w.check(1), 'duplicate');
  t.notOk(w.accept(1), 'a duplicate is refused and changes nothing');
  t.ok(w.accept(100));
  t.equal(w.top, 100);
  t.equal(w.check(37), 'new', '100 - 37 = 63: the left edge, still inside');
  t.equal(w.check(36), 'too-old', '100 - 36 = 64: just left of the window');
  t.ok(w.accept(37));
  t.equal(w.check(37), 'duplicate');
  t.equal(w.check(99), 'new', 'a gap inside the window');
  t.equal(w.check(101), 'new', 'right of the window');
  t.equal(w.check(1), 'too-old', 'seen once, now left of the window');
});

t.test('far ahead: the whole window slides, old bits do not come back', async (t) => {
  const w = new ReplayWindow(64);
  for (let seq = 1; seq <= 64; seq++) t.ok(w.accept(seq));
  t.ok(w.accept(1_000_000));
  for (let seq = 1_000_000 - 63; seq < 1_000_000; seq++) {
    if (w.check(seq) !== 'new') t.fail(`seq ${seq} should be new`);
  }
  t.equal(w.check(1_000_000 - 64), 'too-old');
  t.equal(w.check(1_000_000), 'duplicate');
  // Slide by exactly one ring's worth: bits of the same slots from the last pass must be clear.
  t.ok(w.accept(1_000_000 + 96));
  t.equal(w.check(1_000_000 + 40), 'new');
  t.equal(w.check(1_000_000), 'too-old');
});

t.test('the top of the sequence space', async (t) => {
  const w = new ReplayWindow(64);
  t.ok(w.accept(SEQUENCE_MAX));
  t.equal(w.check(SEQUENCE_MAX), 'duplicate');
  t.equal(w.check(SEQUENCE_MAX - 63), 'new');
  t.equal(w.check(SEQUENCE_MAX - 64), 'too-old');
  t.ok(w.accept(SEQUENCE_MAX - 63));
  t.equal(w.check(SEQUENCE_MAX - 63), 'duplicate');
});

/** A deterministic generator (xorshift32), so the model test is repeatable. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

t.test('against a plain model: random reordering, duplicates and jumps, several window sizes', async (t) => {
  for (const size of [32, 64, 96, 1024, 4096]) {
    const w = new ReplayWindow(size);
    const seen = new Set<number>();
    let top = 0;
    const random = xorshift(size);
    let mismatches = 0;
    let next = 1;
    for (let i = 0; i < 20_000; i++) {
      const r = random() % 100;
      // Mostly in order, some reordered within about twice the window, some duplicates, some jumps.
      let seq: number;
      if (r < 60) seq = next++;
      else if (r < 85) seq = Math.max(1, next - 1 - (random() % (2 * size)));
      else if (r < 95) seq = Math.max(1, next - 1 - (random() % 8));
      else seq = next += random() % (3 * size);
      const expected =
        seq > top ? 'new' : top - seq >= size ? 'too-old' : seen.has(seq) ? 'duplicate' : 'new';
      if (w.check(seq) !== expected) mismatches++;
      if (expected === 'new') {
        w.accept(seq);
        seen.add(seq);
        top = Math.max(top, seq);
      } else if (w.accept(seq)) {
        mismatches++;
      }
    }
    t.equal(mismatches, 0, `window ${size}`);
  }
});

t.test('window sizes', async (t) => {
  t.equal(new ReplayWindow().size, 64, 'default 64');
  t.equal(new ReplayWindow(2048).size, 2048);
  for (const bad of [0, 16, 63, 100, 2 ** 21, 1.5])
    t.throws(() => new ReplayWindow(bad), RangeError, `${bad}`);
});

t.test('the outbound counter refuses to cycle', async (t) => {
  const c = new SequenceCounter();
  t.equal(c.next(), 1);
  t.equal(c.next(), 2);
  const end = new SequenceCounter(SEQUENCE_MAX - 1);
  t.equal(end.next(), SEQUENCE_MAX - 1);
  t.notOk(end.exhausted);
  t.equal(end.next(), SEQUENCE_MAX);
  t.ok(end.exhausted);
  t.equal(end.next(), undefined);
  t.equal(end.next(), undefined, 'and stays exhausted');
  t.equal(end.peek, 2 ** 32);
  t.throws(() => new SequenceCounter(0), RangeError);
});
