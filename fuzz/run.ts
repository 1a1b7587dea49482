import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { knownNote } from './known.js';
import { Random } from './random.js';
import type { Finding, RunOptions, Target } from './target.js';

/** Where reproducers go: fuzz/corpus/<target>/<kind>-<hash>.bin, replayed by test/fuzz/replay.test.ts. */
export const CORPUS = new URL('./corpus/', import.meta.url).pathname;
/** Reproducers of known defects (fuzz/known.ts), replayed to show they are still there. */
export const KNOWN_CORPUS = new URL('./known/', import.meta.url).pathname;

export interface TargetReport {
  readonly target: string;
  readonly inputs: number;
  readonly seconds: number;
  /** Distinct findings (by kind, message and place), each with its reproducer. */
  readonly findings: readonly Finding[];
  /** Reproducer files written. */
  readonly written: readonly string[];
  /** Distinct findings of known defects (fuzz/known.ts): printed apart, no reproducer written. */
  readonly known: readonly { finding: Finding; note: string }[];
}

/** What makes two findings the same defect: kind, the message without its numbers, the first frames. */
export function findingKey(finding: Finding): string {
  return `${finding.kind}:${finding.message
    .split('\n')
    .slice(0, 3)
    .join('|')
    .replace(/[0-9a-f]{6,}/gi, 'H')
    .replace(/\d+/g, 'N')}`;
}

export function fuzzTarget(
  target: Target,
  options: RunOptions & { inputs: number; seed: number; corpus?: string },
): TargetReport {
  const rng = new Random(options.seed);
  const distinct = new Map<string, Finding>();
  const known = new Map<string, { finding: Finding; note: string }>();
  const started = performance.now();
  const inputs = target.fuzz(
    rng,
    options.inputs,
    (finding) => {
      const key = findingKey(finding);
      const note = knownNote(target.name, finding);
      if (note) {
        if (!known.has(note)) known.set(note, { finding, note });
      } else if (!distinct.has(key)) distinct.set(key, finding);
    },
    options,
  );
  const seconds = (performance.now() - started) / 1000;
  const written: string[] = [];
  if (options.corpus) {
    for (const finding of distinct.values())
      written.push(writeReproducer(options.corpus, target.name, finding));
    // A known defect's reproducer goes beside the corpus: replayed to show it is still there.
    for (const { finding } of known.values())
      writeReproducer(join(options.corpus, '..', 'known'), target.name, finding);
  }
  return {
    target: target.name,
    inputs,
    seconds,
    findings: [...distinct.values()],
    written,
    known: [...known.values()],
  };
}

export function writeReproducer(corpus: string, target: string, finding: Finding): string {
  const dir = join(corpus, target);
  mkdirSync(dir, { recursive: true });
  const hash = createHash('sha256').update(finding.reproducer).digest('hex').slice(0, 16);
  const file = join(dir, `${finding.kind}-${hash}.bin`);
  writeFileSync(file, finding.reproducer);
  return file;
}

/** Every reproducer kept for a target: its file name and contents. */
export function corpusFiles(corpus: string, target: string): { name: string; data: Uint8Array }[] {
  let names: string[];
  try {
    names = readdirSync(join(corpus, target));
  } catch {
    return [];
  }
  return names
    .filter((name) => name.endsWith('.bin'))
    .sort()
    .map((name) => ({ name, data: new Uint8Array(readFileSync(join(corpus, target, name))) }));
}
