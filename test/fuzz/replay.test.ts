import { readdirSync } from 'node:fs';
import t from 'tap';
import { knownNote } from '../../fuzz/known.js';
import { CORPUS, corpusFiles, KNOWN_CORPUS } from '../../fuzz/run.js';
import { TARGETS } from '../../fuzz/targets/index.js';

/**
 * Every reproducer the fuzzer ever wrote (fuzz/corpus/<target>/) is replayed on every run: each
 * was a crash, an untyped error, a hang or a forged input changing state, and must stay fixed.
 * No timing bound here (a hang that returns is not measured; one that does not return fails the
 * test by its timeout).
 */

const options = { hangMs: Infinity };

t.test('the corpus names only targets that exist', async (t) => {
  for (const dir of readdirSync(CORPUS))
    t.ok(
      TARGETS.some((target) => target.name === dir),
      `fuzz/corpus/${dir} is a target`,
    );
});

for (const target of TARGETS) {
  const files = corpusFiles(CORPUS, target.name);
  if (!files.length) continue;
  t.test(`${target.name}: ${files.length} reproducers find nothing any more`, async (t) => {
    for (const { name, data } of files) {
      // A known defect met on the way is the known test's (below), not this reproducer's.
      const found = target
        .replay(data, options)
        .filter((f) => !knownNote(target.name, f))
        .map((f) => `${f.kind}: ${f.message}`);
      t.same(found, [], name);
    }
  });
}

t.test('known defects (fuzz/known.ts) still reproduce: when one stops, move it to the corpus', async (t) => {
  for (const target of TARGETS) {
    for (const { name, data } of corpusFiles(KNOWN_CORPUS, target.name)) {
      const found = target.replay(data, options);
      t.ok(
        found.some((f) => knownNote(target.name, f)),
        `${target.name}/${name}: ${found.map((f) => f.kind).join(', ') || 'nothing found'}`,
      );
    }
  }
});
