import { appended, EMPTY, without } from './collections.js';

/**
 * Deadlines keyed by (owner, name): a binary min-heap with lazy deletion. Setting a key again
 * replaces its deadline, clearing forgets it; the heap keeps stale entries until they surface or
 * outnumber the live ones, so every operation is O(log n) and `next()` is O(1) amortised. This is
 * what keeps the cost of one engine input independent of the number of SAs: a tick touches only
 * what is due, and "when is the next tick" is the top of the heap.
 *
 * An owner's live entries are kept on the owner itself (`timers`), a short list searched by name:
 * no table of string keys beside it, an owner's deadlines go with it in one step, and an SA with
 * two or three timers pays for a small array of exactly that length (replaced on change, see
 * core/collections.ts) rather than an object whose keys come and go (V8 keeps those as
 * dictionaries, over 150 bytes each).
 *
 * Deadlines that fall at the same time come out in the order they were armed: the heap orders by
 * (time, arming sequence), a total order, so what is popped never depends on the heap's shape,
 * which `next()` changes when it drops stale entries. Without it an engine that was asked when to
 * tick fired equal deadlines in another order than one that was not, and a recorded history of
 * inputs (a fuzz reproducer) did not bring the same state back.
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
  timers: readonly DeadlineEntry[] | undefined;
}

interface HeapEntry<O> extends DeadlineEntry {
  readonly owner: O;
  /** Arming order: what breaks a tie between equal deadlines. */
  readonly seq: number;
}

/** Whether `a` comes out before `b`. */
function before<O>(a: HeapEntry<O>, b: HeapEntry<O>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export class Deadlines<O extends DeadlineOwner> {
  #heap: HeapEntry<O>[] = [];
  #live = 0;
  #armed = 0;

  /** Arms `name` of `owner` at `at` (seconds), replacing its previous deadline. */
  set(owner: O, name: string, at: number): void {
    const timers = owner.timers ?? EMPTY;
    const index = timers.findIndex((entry) => entry.name === name);
    if (index >= 0 && timers[index]!.at === at) return;
    const entry: HeapEntry<O> = { at, owner, name, live: true, seq: this.#armed++ };
    if (index >= 0) {
      timers[index]!.live = false;
      this.#live--;
      owner.timers = timers.map((timer, i) => (i === index ? entry : timer));
    } else {
      owner.timers = appended(timers, entry);
    }
    this.#live++;
    this.#push(entry);
    this.#compactIfStale();
  }

  clear(owner: O, name: string): void {
    const entry = owner.timers?.find((timer) => timer.name === name);
    if (!entry) return;
    entry.live = false;
    this.#live--;
    forget(owner, entry);
    this.#compactIfStale();
  }

  /** Clears every deadline of `owner`. */
  clearAll(owner: O): void {
    const timers = owner.timers;
    if (!timers) return;
    for (const entry of timers) {
      entry.live = false;
      this.#live--;
    }
    owner.timers = undefined;
    this.#compactIfStale();
  }

  /** The deadline of a key, if armed. */
  get(owner: O, name: string): number | undefined {
    return owner.timers?.find((timer) => timer.name === name)?.at;
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
    forget(top.owner, top);
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
      if (!before(entry, heap[parent]!)) break;
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
      const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, entry)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = entry;
  }
}

/** Takes a cleared or fired entry off its owner's list (the list goes with its last entry). */
function forget(owner: DeadlineOwner, entry: DeadlineEntry): void {
  const timers = without(owner.timers!, entry);
  owner.timers = timers.length ? timers : undefined;
}
