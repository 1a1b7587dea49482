import t from 'tap';
import { type DeadlineOwner, Deadlines } from '../../src/core/deadlines.js';

const owner = (id: number): DeadlineOwner => ({ id, timers: undefined });

t.test('deadlines come out in time order, replaced and cleared ones never', async (t) => {
  const deadlines = new Deadlines<DeadlineOwner>();
  const [a, b, c] = [owner(1), owner(2), owner(3)];
  deadlines.set(a, 'x', 30);
  deadlines.set(b, 'x', 10);
  deadlines.set(c, 'y', 20);
  deadlines.set(a, 'x', 5); // replaces 30
  deadlines.set(c, 'z', 25);
  deadlines.clear(b, 'x');
  t.equal(deadlines.next(), 5);
  t.equal(deadlines.get(a, 'x'), 5);
  t.equal(deadlines.size, 3);
  const due: string[] = [];
  for (let d = deadlines.pop(22); d; d = deadlines.pop(22)) due.push(`${d.owner.id}/${d.name}`);
  t.same(due, ['1/x', '3/y'], 'what is due at 22, earliest first; the cleared one never');
  t.equal(deadlines.next(), 25);
  deadlines.clearAll(c);
  t.equal(deadlines.next(), undefined, 'an owner takes its deadlines along');
  t.equal(deadlines.size, 0);
});

t.test('a heap of stale entries is compacted: memory follows the live deadlines', async (t) => {
  const deadlines = new Deadlines<DeadlineOwner>();
  const owners = Array.from({ length: 100 }, (_, i) => owner(i));
  // Re-arming the same keys over and over (a keepalive, a retransmission) leaves stale entries.
  for (let round = 0; round < 1000; round++)
    for (const o of owners) deadlines.set(o, 'keepalive', 1000 + round + o.id / 1000);
  t.equal(deadlines.size, 100);
  let popped = 0;
  let last = -Infinity;
  for (let d = deadlines.pop(Infinity); d; d = deadlines.pop(Infinity)) {
    const at = 1000 + 999 + d.owner.id / 1000;
    t.ok(at >= last, 'in order');
    last = at;
    popped++;
  }
  t.equal(popped, 100, 'each key once, with its last deadline');
});

t.test('random operations agree with a plain map', async (t) => {
  const deadlines = new Deadlines<DeadlineOwner>();
  const model = new Map<string, number>();
  const owners = Array.from({ length: 20 }, (_, i) => owner(i));
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let now = 0;
  for (let step = 0; step < 5000; step++) {
    const o = owners[Math.floor(random() * owners.length)]!;
    const name = random() < 0.5 ? 'a' : 'b';
    const r = random();
    if (r < 0.5) {
      const at = now + Math.floor(random() * 100);
      deadlines.set(o, name, at);
      model.set(`${o.id}/${name}`, at);
    } else if (r < 0.7) {
      deadlines.clear(o, name);
      model.delete(`${o.id}/${name}`);
    } else {
      now += Math.floor(random() * 20);
      const expected = [...model]
        .filter(([, at]) => at <= now)
        .map(([key]) => key)
        .sort();
      const got: string[] = [];
      for (let d = deadlines.pop(now); d; d = deadlines.pop(now)) got.push(`${d.owner.id}/${d.name}`);
      for (const key of got) model.delete(key);
      if (JSON.stringify(got.sort()) !== JSON.stringify(expected)) {
        t.fail(`step ${step}: due ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
        return;
      }
    }
  }
  const earliest = Math.min(...model.values());
  t.equal(deadlines.next() ?? Infinity, earliest, "the next deadline is the model's earliest");
  t.equal(deadlines.size, model.size);
});

t.test(
  'equal deadlines come out in the order they were armed, whether or not next() was asked',
  async (t) => {
    // next() drops stale entries off the top, which reshapes the heap: the order of what is due
    // together must not depend on it (an engine's recorded inputs would not replay the same).
    const run = (ask: boolean): string[] => {
      const deadlines = new Deadlines<DeadlineOwner>();
      const owners = Array.from({ length: 12 }, (_, i) => owner(i));
      for (const o of owners) deadlines.set(o, 'early', 5 + o.id / 100);
      for (const o of owners) deadlines.set(o, 'due', 10);
      for (const o of owners.slice(0, 6)) {
        deadlines.clear(o, 'early');
        if (ask) deadlines.next();
      }
      const due: string[] = [];
      for (let d = deadlines.pop(10); d; d = deadlines.pop(10))
        if (d.name === 'due') due.push(`${d.owner.id}`);
      return due;
    };
    const armed = Array.from({ length: 12 }, (_, i) => `${i}`);
    t.same(run(false), armed, 'in arming order');
    t.same(run(true), armed, 'the same after next() reshaped the heap');
  },
);
