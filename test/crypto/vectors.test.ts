import t from 'tap';
import {
  algorithmsOf,
  createCryptoProvider,
  PROVIDER_NAMES,
  UnsupportedAlgorithmError,
} from '../../src/crypto/index.js';
import { checkVector, loadVectorFiles, VECTOR_KINDS } from '../../src/crypto/known-answers.js';

/**
 * Runs every published vector in vectors/ against both providers and prints how many vectors
 * each algorithm passed per provider. Where a provider lacks an algorithm it must say so with
 * UnsupportedAlgorithmError; that is asserted and reported, never silently skipped.
 */

const counts = new Map<string, Record<string, number | string>>();

function count(label: string, provider: string, outcome: number | 'unsupported'): void {
  const row = counts.get(label) ?? {};
  row[provider] =
    outcome === 'unsupported' ? outcome : ((row[provider] as number | undefined) ?? 0) + outcome;
  counts.set(label, row);
}

for (const file of loadVectorFiles()) {
  t.test(file.file, async (t) => {
    t.ok(typeof file.source === 'string' && file.source.length > 20, 'names its source');
    t.ok(Array.isArray(file.vectors) && file.vectors.length > 0, 'has vectors');
    t.ok((VECTOR_KINDS as readonly string[]).includes(file.kind), `known kind '${file.kind}'`);
    for (const providerName of PROVIDER_NAMES) {
      const provider = createCryptoProvider(providerName);
      for (const vector of file.vectors) {
        try {
          const { exercised, comparisons } = checkVector(file.kind, provider, vector);
          for (const c of comparisons) t.equal(c.actual, c.expected, `${providerName} ${c.what}`);
          for (const label of exercised) count(label, providerName, 1);
        } catch (error) {
          if (!(error instanceof UnsupportedAlgorithmError)) throw error;
          // Only 3DES may be missing, and only from noble (see README).
          t.equal(
            `${providerName}:${error.algorithm}`,
            'noble:3des',
            `${providerName} declares ${error.algorithm} unsupported`,
          );
          count(error.algorithm, providerName, 'unsupported');
        }
      }
    }
  });
}

t.test('every algorithm of the registry is exercised by a published vector', async (t) => {
  for (const kind of ['encr', 'integ', 'prf', 'dh'] as const) {
    for (const alg of algorithmsOf(kind)) t.ok(counts.get(alg.name)?.node, `${kind} ${alg.name}`);
  }
  const rows = [...counts.entries()].sort(([a], [b]) => a.localeCompare(b));
  const header = `${'vectors passed'.padEnd(24)}${PROVIDER_NAMES.map((p) => p.padStart(13)).join('')}`;
  const lines = rows.map(
    ([label, row]) =>
      `${label.padEnd(24)}${PROVIDER_NAMES.map((p) => String(row[p] ?? 0).padStart(13)).join('')}`,
  );
  t.comment(`\n${header}\n${lines.join('\n')}`);
});
