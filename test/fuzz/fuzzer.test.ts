import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { mutateIkeMessage } from '../../fuzz/mutate.js';
import { Random } from '../../fuzz/random.js';
import { corpusFiles, fuzzTarget } from '../../fuzz/run.js';
import { ikeSeeds } from '../../fuzz/seeds.js';
import { bytesTarget } from '../../fuzz/target.js';
import { ikev1Codec } from '../../fuzz/targets/codecs.js';
import { DecodeError } from '../../src/wire/errors.js';

/** The fuzzer itself: deterministic, and a planted defect is found, written and replayed. */

t.test('a seed makes the same inputs', async (t) => {
  const make = (seed: number) => {
    const rng = new Random(seed);
    const seeds = ikeSeeds(1);
    return Array.from({ length: 50 }, () =>
      Buffer.from(mutateIkeMessage(rng, rng.pick(seeds), seeds)).toString('hex'),
    );
  };
  t.same(make(7), make(7), 'same seed, same inputs');
  t.not(make(7).join(), make(8).join(), 'another seed, other inputs');
});

t.test('the IKE seeds hold every exchange of both versions', async (t) => {
  const exchanges = (version: 1 | 2) => new Set(ikeSeeds(version).map((d) => d[18]));
  t.same(
    [...exchanges(1)].sort((a, b) => a! - b!),
    [2, 4, 5, 32],
    'main, aggressive, informational, quick',
  );
  t.same(
    [...exchanges(2)].sort((a, b) => a! - b!),
    [34, 35, 36, 37],
    'IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL',
  );
  t.ok(
    ikeSeeds(2).some((d) => d[16] === 53),
    'IKEv2 fragments (SKF)',
  );
});

/** Main mode, aggressive mode, informational, quick mode: what the IKEv1 seeds hold. */
const SEED_EXCHANGES = [2, 4, 5, 32];

t.test('a planted untyped error is found, its reproducer written and replayed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-corpus-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const planted = bytesTarget({
    name: 'planted',
    description:
      'the ISAKMP codec with a bug planted: a message of an exchange type no seed has throws a TypeError',
    seeds: () => ikeSeeds(1),
    mutate: mutateIkeMessage,
    check: (input) => {
      ikev1Codec.replay(input, { hangMs: Infinity });
      if (input.length >= 28 && !SEED_EXCHANGES.includes(input[18]!)) throw new TypeError('planted');
      if (input.length < 28) throw new DecodeError('short', 0, 0);
    },
    typed: (error) => error instanceof DecodeError,
  });
  const report = fuzzTarget(planted, { inputs: 2000, seed: 1, hangMs: Infinity, corpus: dir });
  t.equal(report.findings.length, 1, 'one distinct finding');
  t.match(report.findings[0]?.message, /TypeError: planted/);
  t.same(readdirSync(join(dir, 'planted')).length, 1, 'one reproducer written');
  const [file] = corpusFiles(dir, 'planted');
  t.notOk(SEED_EXCHANGES.includes(file!.data[18]!), 'the reproducer is an input that triggers it');
  t.equal(planted.replay(file!.data, { hangMs: Infinity }).length, 1, 'replaying it finds it again');
});
