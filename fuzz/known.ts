import type { Finding } from './target.js';

/**
 * Findings whose defect is known and left for its own change, each with why: the fuzzer prints
 * them apart and writes no reproducer for them, so that a run still shows anything new. Remove
 * an entry with its fix (then its reproducer goes to the corpus like any other).
 */
export const KNOWN: readonly { target: string; kind: Finding['kind']; pattern: RegExp; note: string }[] = [];

export function knownNote(target: string, finding: Finding): string | undefined {
  return KNOWN.find((k) => k.target === target && k.kind === finding.kind && k.pattern.test(finding.message))
    ?.note;
}
