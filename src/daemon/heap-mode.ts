import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

/**
 * V8's heap tuned to the handshake load, for the daemon's process (a library user's process is
 * theirs to tune): V8's defaults while negotiations arrive in numbers; once they stop, memory
 * given back; then the defaults again.
 *
 * Why: a burst of handshakes allocates each one's short-lived state (messages, exchanges, key
 * material) beside the long-lived SA it creates, and much of it is promoted before it dies. Once
 * the burst is over, the old generation holds its live SAs in pages that are largely empty, and
 * V8 gives them back only when its memory reducer runs, which waits for a low allocation rate
 * and had not come 40 s after a burst to 100,000 IKEv1 SAs (`bench:handshake --parts sweep`: 594
 * MB of heap in 842 MB reserved, 1,060 MiB RSS). V8's `--optimize-for-size` starts the memory
 * reducer without that wait, and its full GCs give free page ranges back to the system and
 * compact sparse pages: 877 MiB (before the bound on growth below). It stays on only until that
 * is done. Left on, every full GC reduces memory and the heap grows by small steps, so a large
 * heap is marked again and again: on from the start, CPU per new SA at 100,000 SAs was 3.3 ms
 * against 1.4; on after the burst, the first 500 new SAs after it cost 3.6 ms each (a trickle of
 * DPD or rekeys would pay the same way); back at the defaults once the memory is given back, 2.0
 * ms, as at 1,000 SAs.
 *
 * - `speed` (V8's defaults): while the rate of new negotiations (IKE and child SAs, either role)
 *   is at least `threshold` per second, counted over windows of `window` seconds. Entered as soon
 *   as a window's count reaches the mark.
 * - `memory` (`--optimize-for-size`): from the end of the first window below the mark (and from
 *   the start: a daemon that has just started is quiet) until V8's full GCs have stopped for
 *   `settle` seconds, or `settleBound` seconds have passed without one.
 * - `rest` (V8's defaults): what was given back stays given back, and a trickle of negotiations
 *   costs what it costs under V8's defaults.
 *
 * While negotiations arrive, once the heap is large (`largeHeap` bytes in use at the end of a
 * window; windows run only while negotiations arrive, so a quiet daemon reads nothing), V8's heap
 * may grow by half of what is in use before its next full GC instead of by V8's own factor (up to
 * 4 times), so the garbage a burst promotes no longer piles up to a limit set for a heap four
 * times as large. Bursts to 100,000 IKEv1 SAs, alternated with runs that ignored the flag: peak RSS
 * 823-833 MiB against 938-1,127, for 1.31-1.34 ms of CPU per SA in the burst against 1.21-1.25.
 * Set from the start instead, for small heaps too, it cost 7% more CPU per handshake at N = 3000
 * (small heaps then collect often). It comes off below half of `largeHeap`.
 *
 * Node warns that flags set after start may do nothing or worse; V8 reads both of these
 * (`optimize_for_size`, `heap_growing_percent`) each time it plans a GC (the sweeps above are the
 * evidence that it does), and the daemon sets no others.
 */
export type HeapModeName = 'speed' | 'memory' | 'rest';

/** Ends what it started: a timer, an observer. */
export interface Cancel {
  cancel(): void;
}

export interface HeapModeOptions {
  /** New negotiations per second from which the heap is left to V8's defaults (default 20). */
  readonly threshold?: number;
  /** Seconds over which the rate is counted (default 5). */
  readonly window?: number;
  /** Seconds without a full GC after which memory mode ends (default 5). */
  readonly settle?: number;
  /** Seconds after which memory mode ends even without a full GC (default 60). */
  readonly settleBound?: number;
  /** Where the V8 flags go (node:v8's setFlagsFromString; tests watch it). */
  readonly setFlags?: (flags: string) => void;
  /** Told of every switch, after it happened (a log line). */
  readonly onSwitch?: (mode: HeapModeName) => void;
  /** Runs `callback` once after `ms` without holding the process (an unref'd timer; tests step it). */
  readonly schedule?: (callback: () => void, ms: number) => Cancel;
  /** Calls `callback` after each full GC until cancelled (perf_hooks; tests call it). */
  readonly observeFullGc?: (callback: () => void) => Cancel;
  /** Bytes of heap in use from which its growth is bounded (default 256 MiB). */
  readonly largeHeap?: number;
  /** Bytes of heap in use now (node:v8; tests set it). */
  readonly heapUsed?: () => number;
}

/** How much a large heap may grow between full GCs, in percent of what is in use. */
const LARGE_HEAP_GROWTH = 50;

function unrefTimer(callback: () => void, ms: number): Cancel {
  const timer = setTimeout(callback, ms).unref();
  return { cancel: () => clearTimeout(timer) };
}

function fullGcs(callback: () => void): Cancel {
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        callback();
        return;
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return { cancel: () => observer.disconnect() };
}

/** Each mode's flag; `rest` and `speed` are V8's default. */
const OPTIMIZE_FOR_SIZE: Readonly<Record<HeapModeName, string>> = {
  speed: '--no-optimize-for-size',
  memory: '--optimize-for-size',
  rest: '--no-optimize-for-size',
};

export class HeapMode {
  readonly #threshold: number;
  readonly #windowMs: number;
  readonly #settleMs: number;
  readonly #settleBoundMs: number;
  readonly #setFlags: (flags: string) => void;
  readonly #onSwitch: ((mode: HeapModeName) => void) | undefined;
  readonly #schedule: NonNullable<HeapModeOptions['schedule']>;
  readonly #observeFullGc: NonNullable<HeapModeOptions['observeFullGc']>;
  #mode: HeapModeName | undefined;
  /** Negotiations started in the current window. */
  #count = 0;
  /** The end of the current window (none while quiet). */
  #window: Cancel | undefined;
  /** In memory mode: the full GCs watched, and when memory mode ends. */
  #gcs: Cancel | undefined;
  #settled: Cancel | undefined;
  readonly #largeHeap: number;
  readonly #heapUsed: () => number;
  /** Whether the heap's growth is bounded (LARGE_HEAP_GROWTH) rather than V8's own. */
  #bounded = false;

  constructor(options: HeapModeOptions = {}) {
    this.#threshold = options.threshold ?? 20;
    this.#windowMs = (options.window ?? 5) * 1000;
    this.#settleMs = (options.settle ?? 5) * 1000;
    this.#settleBoundMs = (options.settleBound ?? 60) * 1000;
    this.#setFlags = options.setFlags ?? setFlagsFromString;
    this.#onSwitch = options.onSwitch;
    this.#schedule = options.schedule ?? unrefTimer;
    this.#observeFullGc = options.observeFullGc ?? fullGcs;
    this.#largeHeap = options.largeHeap ?? 256 * 1024 * 1024;
    this.#heapUsed = options.heapUsed ?? (() => getHeapStatistics().used_heap_size);
    this.#switch('memory');
  }

  get mode(): HeapModeName {
    return this.#mode!;
  }

  /** Whether a large heap's growth is bounded now. */
  get bounded(): boolean {
    return this.#bounded;
  }

  /** One new negotiation: O(1), called for each one. */
  negotiationStarted(): void {
    this.#count++;
    if (this.#mode !== 'speed' && this.#count >= this.#perWindow) this.#switch('speed');
    this.#window ??= this.#schedule(() => this.#windowEnd(), this.#windowMs);
  }

  /** Stops watching (nothing left behind); the flags stay as they are. */
  close(): void {
    this.#window?.cancel();
    this.#window = undefined;
    this.#stopWatching();
  }

  get #perWindow(): number {
    return (this.#threshold * this.#windowMs) / 1000;
  }

  #windowEnd(): void {
    const busy = this.#count >= this.#perWindow;
    this.#count = 0;
    // In speed mode the next window must end even if nothing more comes, to switch back.
    this.#window = busy ? this.#schedule(() => this.#windowEnd(), this.#windowMs) : undefined;
    if (this.#mode === 'speed' && !busy) this.#switch('memory');
    this.#boundGrowth();
  }

  /** At each window's end: bound a large heap's growth, unbound it below half the mark. */
  #boundGrowth(): void {
    const used = this.#heapUsed();
    const bounded = this.#bounded ? used >= this.#largeHeap / 2 : used >= this.#largeHeap;
    if (bounded === this.#bounded) return;
    this.#bounded = bounded;
    this.#setFlags(`--heap-growing-percent=${bounded ? LARGE_HEAP_GROWTH : 0}`);
  }

  #switch(mode: HeapModeName): void {
    if (this.#mode === mode) return;
    this.#mode = mode;
    this.#stopWatching();
    if (mode === 'memory') {
      this.#settled = this.#schedule(() => this.#switch('rest'), this.#settleBoundMs);
      this.#gcs = this.#observeFullGc(() => {
        this.#settled?.cancel();
        this.#settled = this.#schedule(() => this.#switch('rest'), this.#settleMs);
      });
    }
    this.#setFlags(OPTIMIZE_FOR_SIZE[mode]);
    this.#onSwitch?.(mode);
  }

  #stopWatching(): void {
    this.#gcs?.cancel();
    this.#settled?.cancel();
    this.#gcs = this.#settled = undefined;
  }
}
