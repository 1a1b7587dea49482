import type { Action } from '../core/actions.js';

/** What the timer drives: an engine's next deadline and its tick (IkeEngine has both). */
export interface Deadlines {
  nextTimeout(): number | undefined;
  tick(now: number): Action[];
}

/**
 * One timer for an engine's next deadline (in seconds on `clock`). A runtime calls arm() after
 * every input; the timer is set again only when the deadline comes earlier than the armed one,
 * so a datagram costs no clearTimeout and setTimeout. A timer that fires early ticks nothing and
 * arms the next. The daemon and the benchmark's load generator run their engines on it.
 */
export class DeadlineTimer {
  readonly #engine: Deadlines;
  readonly #clock: () => number;
  readonly #apply: (actions: Action[]) => void;
  #timer: NodeJS.Timeout | undefined;
  /** The deadline #timer is set for. */
  #armedAt: number | undefined;
  #stopped = false;

  constructor(engine: Deadlines, clock: () => number, apply: (actions: Action[]) => void) {
    this.#engine = engine;
    this.#clock = clock;
    this.#apply = apply;
  }

  arm(): void {
    if (this.#stopped) return;
    const next = this.#engine.nextTimeout();
    if (next === undefined) return;
    if (this.#timer !== undefined && this.#armedAt !== undefined && this.#armedAt <= next) return;
    clearTimeout(this.#timer);
    this.#armedAt = next;
    // setTimeout takes at most 2^31 - 1 ms; a later deadline is armed again when that fires.
    const delay = Math.max(0, Math.min((next - this.#clock()) * 1000, 2 ** 31 - 1));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#armedAt = undefined;
      this.#apply(this.#engine.tick(this.#clock()));
      this.arm();
    }, delay);
  }

  /** No tick from now on (the runtime stops). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = this.#armedAt = undefined;
  }
}
