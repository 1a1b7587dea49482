import t from 'tap';
import { knownNote } from '../../fuzz/known.js';
import { fuzzTarget } from '../../fuzz/run.js';
import { TARGETS } from '../../fuzz/targets/index.js';

/**
 * A short fixed budget of every fuzz target, deterministic (seed 1), without timing bounds: what
 * CI runs of `npm run fuzz`. Nothing may be found but the known defects of fuzz/known.ts.
 */

const ENGINES = new Set(['ikev1-engine', 'ikev2-engine']);

// Every target in turn (the engine sessions take a while on a busy machine); no timing is asserted.
t.setTimeout(600_000);

for (const target of TARGETS) {
  t.test(target.name, async (t) => {
    const inputs = ENGINES.has(target.name) ? 1500 : 3000;
    const report = fuzzTarget(target, { inputs, seed: 1, hangMs: Infinity });
    t.ok(report.inputs >= inputs, `${report.inputs} inputs`);
    t.same(
      report.findings.map((f) => `${f.kind}: ${f.message}`),
      [],
      'no finding',
    );
    t.ok(
      report.known.every(({ finding }) => knownNote(target.name, finding)),
      'known findings are the known defects',
    );
  });
}
