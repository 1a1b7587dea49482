import t from 'tap';
import { knownNote } from '../../fuzz/known.js';
import { fuzzTarget } from '../../fuzz/run.js';
import { targetNamed } from '../../fuzz/targets/index.js';

/**
 * A short fixed budget of fuzz targets, deterministic (seed 1), without timing bounds: what CI
 * runs of `npm run fuzz`, a few targets per test file so that each file stays within tap's time
 * limit. Nothing may be found but the known defects of fuzz/known.ts.
 */
export function budget(targets: readonly string[], inputs: number): void {
  for (const name of targets) {
    t.test(name, async (t) => {
      const target = targetNamed(name);
      const report = fuzzTarget(target, { inputs, seed: 1, hangMs: Infinity });
      t.ok(report.inputs >= inputs, `${report.inputs} inputs`);
      t.same(
        report.findings.map((f) => `${f.kind}: ${f.message}`),
        [],
        'no finding',
      );
      t.ok(
        report.known.every(({ finding }) => knownNote(name, finding)),
        'known findings are the known defects',
      );
    });
  }
}
