/**
 * Deadlines keyed by (owner, name): a binary min-heap with lazy deletion. Setting a key again
 * replaces its deadline, clearing forgets it; the heap keeps stale entries until they surface or
 * outnumber the live ones, so every operation is O(log n) and `next()` is O(1) amortised. This is
 * what keeps the cost of one engine input independent of the number of SAs: a tick touches only
 * what is due, and "when is the next tick" is the top of the heap.
 *
 * An owner's live entries are kept on the owner itself (`timers`), by name: no table of string
 * keys beside it, and an owner's deadlines go with it in one step.
 */

export interface DeadlineEntry {
  readonly at: number;
  readonly name: string;
  /** Cleared or replaced: skipped when it surfaces. */
  live: boolean;
}

export interface DeadlineOwner {
  readonly id: number;
  /** Written by Deadlines alone. */
  timers: Record<string, DeadlineEntry> | undefined;
}

interface HeapEntry<O> extends DeadlineEntry {
  readonly owner: O;
}

export class Deadlines<O extends DeadlineOwner> {
  #heap: HeapEntry<O>[] = [];
  #live = 0;

  /** Arms `name` of `owner` at `at` (seconds), replacing its previous deadline. */
  set(owner: O, name: string, at: number): void {
    const timers = (owner.timers ??= {});
    const previous = timers[name];
    if (previous) {
      if (previous.at === at) return;
      previous.live = false;
      this.#live--;
    }
    const entry: HeapEntry<O> = { at, owner, name, live: true };
    timers[name] = entry;
    this.#live++;
    this.#push(entry);
    this.#compactIfStale();
  }

  clear(owner: O, name: string): void {
    const entry = owner.timers?.[name];
    if (!entry) return;
    entry.live = false;
    this.#live--;
    delete owner.timers![name];
    this.#compactIfStale();
  }

  /** Clears every deadline of `owner`. */
  clearAll(owner: O): void {
    const timers = owner.timers;
    if (!timers) return;
    for (const name in timers) {
      timers[name]!.live = false;
      this.#live--;
    }
    owner.timers = undefined;
    this.#compactIfStale();
  }

  /** The deadline of a key, if armed. */
  get(owner: O, name: string): number | undefined {
    return owner.timers?.[name]?.at;
  }

  /** The earliest live deadline. */
  next(): number | undefined {
    this.#dropStaleTop();
    return this.#heap[0]?.at;
  }

  /** Removes and returns the earliest deadline that is due at `now`, if any. */
  pop(now: number): { owner: O; name: string } | undefined {
    this.#dropStaleTop();
    const top = this.#heap[0];
    if (!top || top.at > now) return undefined;
    this.#shift();
    top.live = false;
    this.#live--;
    delete top.owner.timers![top.name];
    return { owner: top.owner, name: top.name };
  }

  get size(): number {
    return this.#live;
  }

  #dropStaleTop(): void {
    while (this.#heap.length && !this.#heap[0]!.live) this.#shift();
  }

  /** Rebuilds the heap from the live entries when stale ones dominate, bounding its memory. */
  #compactIfStale(): void {
    if (this.#heap.length < 64 || this.#heap.length < 2 * this.#live) return;
    this.#heap = this.#heap.filter((entry) => entry.live);
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #push(entry: HeapEntry<O>): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= entry.at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  #shift(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    this.#down(0);
  }

  #down(start: number): void {
    const heap = this.#heap;
    const entry = heap[start]!;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.at < heap[left]!.at ? right : left;
      if (heap[child]!.at >= entry.at) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = entry;
  }
}
