/**
 * Deadlines keyed by (owner, name): a binary min-heap with lazy deletion. Setting a key again
 * replaces its deadline, clearing forgets it; the heap keeps stale entries until they surface or
 * outnumber the live ones, so every operation is O(log n) and `next()` is O(1) amortised. This is
 * what keeps the cost of one engine input independent of the number of SAs: a tick touches only
 * what is due, and "when is the next tick" is the top of the heap.
 */

interface Entry<O> {
  readonly at: number;
  readonly owner: O;
  readonly name: string;
  /** Cleared or replaced: skipped when it surfaces. */
  live: boolean;
}

export class Deadlines<O extends { readonly id: number }> {
  #heap: Entry<O>[] = [];
  /** The live entry of each key, `${owner.id}/${name}`. */
  readonly #live = new Map<string, Entry<O>>();
  /** The names armed per owner, so that an owner's deadlines go with it. */
  readonly #names = new Map<number, Set<string>>();

  /** Arms `name` of `owner` at `at` (seconds), replacing its previous deadline. */
  set(owner: O, name: string, at: number): void {
    const key = `${owner.id}/${name}`;
    const previous = this.#live.get(key);
    if (previous) {
      if (previous.at === at) return;
      previous.live = false;
    }
    const entry: Entry<O> = { at, owner, name, live: true };
    this.#live.set(key, entry);
    let names = this.#names.get(owner.id);
    if (!names) this.#names.set(owner.id, (names = new Set()));
    names.add(name);
    this.#push(entry);
    this.#compactIfStale();
  }

  clear(owner: O, name: string): void {
    const key = `${owner.id}/${name}`;
    const entry = this.#live.get(key);
    if (!entry) return;
    entry.live = false;
    this.#live.delete(key);
    this.#forgetName(owner.id, name);
    this.#compactIfStale();
  }

  /** Clears every deadline of `owner`. */
  clearAll(owner: O): void {
    const names = this.#names.get(owner.id);
    if (!names) return;
    for (const name of names) {
      const entry = this.#live.get(`${owner.id}/${name}`);
      if (entry) entry.live = false;
      this.#live.delete(`${owner.id}/${name}`);
    }
    this.#names.delete(owner.id);
    this.#compactIfStale();
  }

  /** The deadline of a key, if armed. */
  get(owner: O, name: string): number | undefined {
    return this.#live.get(`${owner.id}/${name}`)?.at;
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
    this.#live.delete(`${top.owner.id}/${top.name}`);
    this.#forgetName(top.owner.id, top.name);
    return { owner: top.owner, name: top.name };
  }

  get size(): number {
    return this.#live.size;
  }

  #forgetName(id: number, name: string): void {
    const names = this.#names.get(id);
    if (!names) return;
    names.delete(name);
    if (names.size === 0) this.#names.delete(id);
  }

  #dropStaleTop(): void {
    while (this.#heap.length && !this.#heap[0]!.live) this.#shift();
  }

  /** Rebuilds the heap from the live entries when stale ones dominate, bounding its memory. */
  #compactIfStale(): void {
    if (this.#heap.length < 64 || this.#heap.length < 2 * this.#live.size) return;
    this.#heap = [...this.#live.values()];
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #push(entry: Entry<O>): void {
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
