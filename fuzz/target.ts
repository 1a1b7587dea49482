import type { Random } from './random.js';

/**
 * What a fuzz target is, and what counts as a finding: an exception that is not the module's typed
 * error, an input that takes longer than the bound (a hang), state changed by an input whose
 * integrity was not verified, or growth without bound. A finding carries a reproducer: the bytes
 * that `replay` turns back into the same finding, kept in fuzz/corpus/<target>/ and replayed by
 * test/fuzz/replay.test.ts forever after.
 */

export type FindingKind = 'exception' | 'hang' | 'unverified-state' | 'growth';

export interface Finding {
  readonly kind: FindingKind;
  /** What happened, with the first frames of the stack for an exception. */
  readonly message: string;
  readonly reproducer: Uint8Array;
}

export interface RunOptions {
  /**
   * An input taking more CPU time than this (ms) is a hang; Infinity where timing must not matter
   * (CI).
   */
  readonly hangMs: number;
}

/**
 * The process's CPU time in ms: what confirms a hang. Wall time counts the time a busy shared
 * machine (or `nice`) keeps the fuzzer waiting, which made hangs of inputs that take milliseconds
 * when they run; but reading the CPU time is a system call that cost 11% of an engine session's
 * time per input, so inputs are timed by the wall clock and only one over the bound is run again
 * on this clock.
 */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

export interface Target {
  readonly name: string;
  readonly description: string;
  /** Runs `count` inputs made from `rng`, reporting each finding; returns how many it ran. */
  fuzz(rng: Random, count: number, report: (finding: Finding) => void, options: RunOptions): number;
  /** What one corpus file still finds (nothing, once its defect is fixed). */
  replay(reproducer: Uint8Array, options: RunOptions): Finding[];
}

/** A stack's first frames, without the absolute paths that differ between machines. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return `thrown: ${String(error)}`;
  const frames = (error.stack ?? '')
    .split('\n')
    .filter((line) => line.trimStart().startsWith('at '))
    .slice(0, 4)
    .map((line) => line.replace(/\(?(file:\/\/)?\/[^()]*\/(src|fuzz|test)\//, '($2/'));
  return [`${error.name}: ${error.message}`.slice(0, 500), ...frames].join('\n');
}

/**
 * A target whose input is one byte string checked by a pure function: the codecs, the kernel
 * message decoders, the configuration parsers, the control request parser. `check` throws only
 * what `typed` accepts; anything else it throws is a finding.
 */
export function bytesTarget(spec: {
  name: string;
  description: string;
  seeds: () => readonly Uint8Array[];
  mutate: (rng: Random, input: Uint8Array, seeds: readonly Uint8Array[]) => Uint8Array;
  check: (input: Uint8Array) => void;
  typed: (error: unknown) => boolean;
}): Target {
  let seeds: readonly Uint8Array[] | undefined;
  const timed = (input: Uint8Array, clock: () => number): { took: number; error?: unknown } => {
    const started = clock();
    try {
      spec.check(input);
    } catch (error) {
      return { took: clock() - started, error };
    }
    return { took: clock() - started };
  };
  const one = (input: Uint8Array, options: RunOptions): Finding | undefined => {
    const { took, error } = timed(input, () => performance.now());
    if (error !== undefined && !spec.typed(error))
      return { kind: 'exception', message: describeError(error), reproducer: input };
    // A pause (a GC, another process) can exceed the bound once: a hang does it again, in CPU time.
    if (took > options.hangMs) {
      const again = timed(input, cpuMs).took;
      if (again > options.hangMs)
        return { kind: 'hang', message: `one input took ${again.toFixed(0)} ms of CPU`, reproducer: input };
    }
    return undefined;
  };
  return {
    name: spec.name,
    description: spec.description,
    fuzz(rng, count, report, options) {
      seeds ??= spec.seeds();
      for (let i = 0; i < count; i++) {
        let input = rng.pick(seeds);
        // Stacked mutations: most inputs one or two steps from a real one, some far.
        const steps = rng.chance(0.5) ? 1 : 1 + rng.below(rng.chance(0.8) ? 4 : 16);
        for (let s = 0; s < steps; s++) input = spec.mutate(rng, input, seeds);
        const finding = one(input, options);
        if (finding) report(finding);
      }
      return count;
    },
    replay(reproducer, options) {
      const finding = one(reproducer, options);
      return finding ? [finding] : [];
    },
  };
}

/** A text target: the same, over UTF-8 text. */
export const utf8 = {
  encode: (text: string): Uint8Array => new TextEncoder().encode(text),
  decode: (bytes: Uint8Array): string => new TextDecoder().decode(bytes),
};
